import FerryEndpoints
import FerryNode
import FerryServer
import Foundation
import Logging
import ServiceLifecycle
import Testing

@Suite struct NodeTests {
    @Test func aNodeServesTheDemoSiteRegistersItsServicesAndSaysWhereItRuns() async throws {
        let data = FileManager.default.temporaryDirectory.appendingPathComponent("ferry-node-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: data) }
        let node = try await Node.start(
            .init(httpPort: 0, controlPort: 0, endpointsPort: 0, kvPort: 0, dataDirectory: data),
            logger: Logger(label: "test")
        )
        let server = node.fileServer
        #expect(node.summary.first == "listening on 127.0.0.1:\(server.port)")
        #expect(node.summary.dropFirst().first == "endpoints on 127.0.0.1:\(node.endpointDaemon.port)")
        #expect(node.summary.contains { $0.contains("curl -i http://127.0.0.1:\(server.port)/") })
        let control = try #require(server.controlAddress)
        #expect(node.summary.contains { $0.contains("\(control.host):\(control.port)") })
        #expect(server.configuration.root.hasPrefix("/tmp/ferry-demo-"))

        let stats = try await ControlClient(host: control.host, port: control.port).stats()
        #expect(stats["requests_served"] == 0)

        let group = ServiceGroup(services: node.services, logger: Logger(label: "test"))
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await group.run() }
            // Every service of the node is found by name at its endpoint daemon.
            let directory = try await EndpointClient.connect(port: node.endpointDaemon.port)
            for name in ["files", "files-control", "kv"] {
                for try await change in directory.watch(name) where !change.entries.isEmpty { break }
            }
            let kv = try await directory.lookup("kv")
            #expect(kv.first?.endpoints == [ServiceEndpoint(host: "127.0.0.1", port: node.kvServer.port)])
            #expect(try await directory.lookup("files").first?.metadata["protocol"] == "http")
            await directory.close()
            await group.triggerGracefulShutdown()
            try await tasks.waitForAll()
        }
    }
}

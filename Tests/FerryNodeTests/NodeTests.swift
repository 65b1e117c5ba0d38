import FerryEndpoints
import FerryNode
import FerryServer
import FerryTestSupport
import Foundation
import Logging
import ServiceLifecycle
import Testing

#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

@Suite struct NodeTests {
    /// One request through the cluster: its status, body, and which app node answered.
    func request(_ method: String, _ url: String) async throws -> (Int, String, String?) {
        var request = URLRequest(url: URL(string: url)!)
        request.httpMethod = method
        let (data, response) = try await URLSession.shared.data(for: request)
        let http = response as! HTTPURLResponse
        return (http.statusCode, String(decoding: data, as: UTF8.self), http.value(forHTTPHeaderField: "Ferry-Node"))
    }

    @Test func aNodeServesTheDemoSiteRegistersItsServicesAndSaysWhereItRuns() async throws {
        let temporary = try TemporaryDirectory()
        defer { withExtendedLifetime(temporary) {} }  // removed at the end of the test
        let data = temporary.path
        let node = try await Node.start(
            .init(httpPort: 0, controlPort: 0, endpointsPort: 0, kvPort: 0, dataDirectory: data, objectsPort: 0),
            logger: Logger(label: "test")
        )
        let server = node.fileServer
        let front = node.frontSwitch.address
        #expect(node.summary.first == "listening on \(front)")
        #expect(node.summary.dropFirst().first == "endpoints on 127.0.0.1:\(node.endpointDaemon.port)")
        #expect(node.summary.contains { $0.contains("curl -i http://\(front)/") })
        #expect(node.apps.count == 3)
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
            for name in ["web", "app", "files", "files-control", "kv"] {
                for try await change in directory.watch(name) where !change.entries.isEmpty { break }
            }
            let kv = try await directory.lookup("kv")
            #expect(kv.first?.endpoints == [ServiceEndpoint(host: "127.0.0.1", port: node.kvServer.port)])
            #expect(try await directory.lookup("files").first?.metadata["protocol"] == "http")
            #expect(try await directory.lookup("app").first?.endpoints.count == 3)

            // Three tiers: the switch sends /app/ to the app nodes in turn, which count in kv;
            // everything else goes to the file server.
            let (status, page, _) = try await self.request("GET", "http://\(front)/")
            #expect(status == 200 && page.contains("Ferry node"))
            var answeredBy: Set<String> = []
            for visit in 1...3 {
                let (status, body, node) = try await self.request("POST", "http://\(front)/app/visits")
                #expect(status == 200)
                #expect(body.contains("\"visits\":\(visit)"), "\(body)")
                #expect(body.contains("\"forwardedFor\":\"127.0.0.1\""), "the app node sees who asked")
                if let node { answeredBy.insert(node) }
            }
            #expect(answeredBy == ["app-1", "app-2", "app-3"])
            let (missing, _, _) = try await self.request("GET", "http://\(front)/app/nowhere")
            #expect(missing == 404)
            await directory.close()
            await group.triggerGracefulShutdown()
            try await tasks.waitForAll()
        }
    }
}

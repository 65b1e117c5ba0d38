import FerryNode
import FerryServer
import Logging
import ServiceLifecycle
import Testing

@Suite struct NodeTests {
    @Test func aNodeServesTheDemoSiteAndSaysWhereItRuns() async throws {
        let node = try await Node.start(.init(httpPort: 0, controlPort: 0), logger: Logger(label: "test"))
        let server = node.fileServer
        #expect(node.summary.first == "listening on 127.0.0.1:\(server.port)")
        #expect(node.summary.contains { $0.contains("curl -i http://127.0.0.1:\(server.port)/") })
        let control = try #require(server.controlAddress)
        #expect(node.summary.contains { $0.contains("\(control.host):\(control.port)") })
        #expect(server.configuration.root.hasPrefix("/tmp/ferry-demo-"))

        let stats = try await ControlClient(host: control.host, port: control.port).stats()
        #expect(stats["requests_served"] == 0)

        let group = ServiceGroup(services: node.services, logger: Logger(label: "test"))
        async let run: Void = group.run()
        await group.triggerGracefulShutdown()
        try await run
    }
}

import FerryHTTP
import FerryServer
import FerryTestSupport
import Foundation
import Logging
import NIOPosix
import Testing

@testable import FerryClient

@Suite struct ConnectionTests {
    /// A preconnected connection the server closed at its header timeout, before the client used
    /// it, fails its GET as closed (the fetcher then opens another), not after the GET's timeout.
    @Test func aConnectionTheServerClosedWhileItWaitedFailsAsClosedAtOnce() async throws {
        let site = try TemporaryDirectory()
        try Data("hi".utf8).write(to: URL(fileURLWithPath: site.path + "/a.txt"))
        var logger = Logger(label: "test")
        logger.logLevel = .critical
        let server = try await FileServer.bind(
            .init(root: site.path, timeouts: ClientTimeouts(header: .milliseconds(200))),
            logger: logger
        )
        try await withRunning([server], logger: logger) {
            let connection = try await Connection.open(
                "127.0.0.1:\(server.port)",
                group: MultiThreadedEventLoopGroup.singleton
            )
            let timedOut = { server.metrics.snapshot.first { $0.name == "connections_timed_out" }?.value ?? 0 }
            #expect(
                await eventually(within: .seconds(60)) { timedOut() == 1 },
                "the server closes it at its header timeout"
            )
            let url = try #require(URL(string: "http://127.0.0.1:\(server.port)/a.txt"))
            await #expect {
                _ = try await connection.get(url, timeout: .seconds(60))
            } throws: { error in
                if case Connection.Failure.closedBeforeAnswer = error { true } else { false }
            }
            await connection.close()
        }
    }
}

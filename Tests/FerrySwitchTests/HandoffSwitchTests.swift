import FerryEndpoints
import FerryServer
import FerrySwitch
import FerryTestSupport
import Foundation
import Testing

@Suite struct HandoffSwitchTests {
    func makeSwitch(_ paths: [String]) throws -> HandoffSwitch {
        try HandoffSwitch(
            listen: try SwitchListener(ServiceEndpoint(host: "127.0.0.1", port: 0)),
            backends: paths.map { BackendSpec(address: .unix($0)) },
            healthCheckInterval: nil
        )
    }

    @Test(arguments: [ExecutionModel.eventDriven, .dispatcher])
    func connectionsAreHandedToTheBackendsInTurn(model: ExecutionModel) async throws {
        try await FileBackends.with(names: ["a", "b"], handoff: true, model: model) { backends in
            let handoff = try self.makeSwitch([backends.handoffPath(0), backends.handoffPath(1)])
            defer { handoff.stop() }
            var names: [String] = []
            for _ in 0..<4 {
                let client = try TestClient(port: handoff.address.port)
                names.append(client.fetch("/name.txt")?.text ?? "no answer")
                client.close()
            }
            #expect(names == ["a", "b", "a", "b"])
        }
    }

    @Test func aHandedOffConnectionNoLongerPassesThroughTheSwitch() async throws {
        try await FileBackends.with(names: ["a"], handoff: true) { backends in
            let handoff = try self.makeSwitch([backends.handoffPath(0)])
            let client = try TestClient(port: handoff.address.port)
            defer { client.close() }
            #expect(client.fetch("/name.txt")?.text == "a")
            // Only its owner may hand connections over; the socket was bound in a private
            // directory and moved into place, which is gone.
            let path = backends.handoffPath(0)
            let mode = try FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? Int
            #expect(mode == 0o600)
            let folder = (path as NSString).deletingLastPathComponent
            let left = try FileManager.default.contentsOfDirectory(atPath: folder).filter { $0.hasPrefix(".ferry-") }
            #expect(left.isEmpty, "\(left)")
            // With the switch gone, the same keep-alive connection still reaches the backend.
            handoff.stop()
            #expect(client.fetch("/name.txt")?.text == "a")
            #expect(backends.servers[0].registry.count >= 1)
        }
    }

    @Test func aBackendThatIsGoneIsSkippedAndLeavesRotation() async throws {
        try await FileBackends.with(names: ["live"], handoff: true) { backends in
            let gone = backends.directory + "/nobody.sock"
            let handoff = try self.makeSwitch([gone, backends.handoffPath(0)])
            defer { handoff.stop() }
            for _ in 0..<3 {
                let client = try TestClient(port: handoff.address.port)
                #expect(client.fetch("/name.txt")?.text == "live")
                client.close()
            }
            #expect(handoff.balancer.backends[0].up == false)
            #expect(handoff.balancer.backends[0].failures == 1)
        }
    }

    @Test func handoffNeedsBackendsOnThisHost() {
        #expect(throws: SwitchError.handoffNeedsUnixBackend("127.0.0.1:80")) {
            try HandoffSwitch(
                listen: try SwitchListener(ServiceEndpoint(host: "127.0.0.1", port: 0)),
                backends: [BackendSpec(endpoint: ServiceEndpoint(host: "127.0.0.1", port: 80))],
                healthCheckInterval: nil
            )
        }
        #expect(BackendSpec("unix:/run/ferry.sock@2") == BackendSpec(address: .unix("/run/ferry.sock"), weight: 2))
        #expect(BackendSpec("unix:relative") == nil)
    }

    @Test func aServerRefusesAHandoffPathThatIsNotASocket() async throws {
        let path = NSTemporaryDirectory() + "ferry-not-a-socket-\(UUID().uuidString.prefix(8))"
        FileManager.default.createFile(atPath: path, contents: Data("keep me".utf8))
        defer { try? FileManager.default.removeItem(atPath: path) }
        await #expect(throws: (any Error).self) {
            _ = try await FileServer.bind(
                .init(root: NSTemporaryDirectory(), handoffSocket: path),
                logger: .init(label: "t")
            )
        }
        #expect(FileManager.default.contents(atPath: path) == Data("keep me".utf8), "the file is left alone")
    }
}

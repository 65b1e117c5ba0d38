import FerryServer
import FerryTestSupport
import FerryWire
import NIOCore
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// The seed's out-of-band interrupts: a client stops a long transfer without closing its
/// connection, through the control endpoint or with TCP urgent data on the connection itself.
@Suite(.serialized) struct InterruptTests {
    static let bigSize = 64 << 20
    let directory: TemporaryDirectory

    init() throws {
        self.directory = try TemporaryDirectory()
        self.directory.writeLarge("big.bin", megabytes: Self.bigSize >> 20)
        self.directory.write("small.txt", "small")
    }

    enum Path: String, CaseIterable {
        case controlEndpoint
        case urgentData
    }

    /// Starts a big chunked transfer, reads a little of it slowly, cancels it, and checks the body
    /// ends early with a `cancelled` trailer and the same connection serves the next request.
    @Test(arguments: ExecutionModel.allCases, Path.allCases)
    func cancelsATransferAndKeepsTheConnection(model: ExecutionModel, path: Path) async throws {
        let configuration = FileServer.Configuration(
            root: self.directory.path,
            model: model,
            workers: 2,
            controlPort: 0
        )
        try await withFileServer(configuration) { server in
            let connection = try TestClient(port: server.port, receiveBuffer: 16 * 1024)
            try connection.get("/big.bin", ["TE: trailers"])
            let head = try connection.readHead()
            #expect(head.status == 200)
            #expect(head.header("transfer-encoding") == "chunked")
            #expect(head.header("content-length") == nil)
            let connectionID = try #require(head.header("ferry-connection-id").flatMap { UInt64($0) })
            let requestID = try #require(head.header("ferry-request-id").flatMap { UInt64($0) })
            _ = try connection.read(upTo: 1000)  // a slow reader: the server is blocked on us now

            switch path {
            case .controlEndpoint:
                let control = try #require(server.controlAddress)
                let outcome = try await ControlClient(host: control.host, port: control.port)
                    .cancel(connectionID: connectionID, requestID: requestID)
                #expect(outcome == .cancelled)
            case .urgentData:
                try connection.sendUrgent()
                try await server.waitForUrgentData()
            }

            // Read what is left of the body: the rest of the chunk in flight and the last chunk.
            let end = Array("Ferry-Transfer: cancelled\r\n\r\n".utf8)
            var window: [UInt8] = []
            var afterCancel = 0
            while !window.containsSubsequence(end) {
                let bytes = try connection.read(upTo: 65536)
                guard !bytes.isEmpty else {
                    Issue.record("the connection closed instead of ending the body")
                    return
                }
                afterCancel += bytes.count
                window = Array((window + bytes).suffix(end.count + 8))
            }
            #expect(
                afterCancel < Self.bigSize / 4,
                "the transfer stopped early (\(afterCancel) bytes after the cancel)"
            )

            try connection.get("/small.txt")
            let next = try connection.readResponse()
            #expect(next.text == "small", "the same connection serves the next request")
            #expect(next.header("ferry-request-id") == "\(requestID + 1)")
            #expect(server.metrics.snapshot.first { $0.name == "requests_cancelled" }?.value == 1)
        }
    }

    /// Without trailers the body has a Content-Length, which cannot end early: a cancel closes.
    @Test(arguments: [ExecutionModel.dispatcher, .eventDriven])
    func cancellingAContentLengthBodyClosesTheConnection(model: ExecutionModel) async throws {
        let configuration = FileServer.Configuration(root: self.directory.path, model: model, workers: 2)
        try await withFileServer(configuration) { server in
            let connection = try TestClient(port: server.port, receiveBuffer: 16 * 1024)
            try connection.get("/big.bin")
            let head = try connection.readHead()
            #expect(head.header("content-length") == "\(Self.bigSize)")
            _ = try connection.read(upTo: 1000)
            try connection.sendUrgent()
            try await server.waitForUrgentData()
            let rest = try connection.drainUntilClosed()
            #expect(rest < Self.bigSize / 4)
        }
    }

    /// sendfile(2) raises SIGPIPE when the client has gone; the server must shrug it off.
    @Test(arguments: ExecutionModel.allCases)
    func aClientThatHangsUpMidBodyLeavesTheServerServing(model: ExecutionModel) async throws {
        let configuration = FileServer.Configuration(root: self.directory.path, model: model, workers: 2)
        try await withFileServer(configuration) { server in
            for _ in 0..<3 {
                let quitter = try TestClient(port: server.port, receiveBuffer: 4096)
                try quitter.get("/big.bin")
                _ = try quitter.readHead()
            }  // each closes here with most of the body unread
            let next = try TestClient(port: server.port)
            try next.get("/small.txt")
            #expect(try next.readResponse().text == "small")
        }
    }

    @Test func theControlEndpointReportsWhatItCouldNotCancelAndRefusesUnknownKinds() async throws {
        let configuration = FileServer.Configuration(root: self.directory.path, model: .dispatcher, controlPort: 0)
        try await withFileServer(configuration) { server in
            let address = try #require(server.controlAddress)
            let client = ControlClient(host: address.host, port: address.port)
            #expect(try await client.cancel(connectionID: 99, requestID: 1) == .notRunning)

            let unknown = try await client.call(UnknownMessage())
            #expect(unknown.header.flags.contains(.error))
            #expect(try unknown.decode(as: ErrorMessage.self).code == .unknownKind)

            let stats = try await client.stats()
            #expect(stats["requests_served"] == 0)
            #expect(stats["open_connections"] != nil)
        }
    }

    @Test func aGarbageControlConnectionIsClosedAndOthersCarryOn() async throws {
        let configuration = FileServer.Configuration(root: self.directory.path, model: .eventDriven, controlPort: 0)
        try await withFileServer(configuration) { server in
            let address = try #require(server.controlAddress)
            let garbage = try TestClient(port: address.port)
            try garbage.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            #expect(try garbage.drainUntilClosed() == 0, "an HTTP request on the control port closes that connection")
            let stats = try await ControlClient(host: address.host, port: address.port).stats()
            #expect(stats["requests_served"] == 0)
        }
    }
}

private struct UnknownMessage: WireMessage {
    static let kind = MessageKind(rawValue: 0x7F)
    init() {}
    init(from payload: inout NIOCore.ByteBuffer) throws {}
    func encode(into payload: inout NIOCore.ByteBuffer) {}
}

extension Array where Element == UInt8 {
    func containsSubsequence(_ needle: [UInt8]) -> Bool {
        guard needle.count <= self.count else { return false }
        return (0...(self.count - needle.count)).contains { Array(self[$0..<$0 + needle.count]) == needle }
    }
}

extension FileServer {
    /// Waits until the server has seen the urgent byte: the signal that the cancel is under way,
    /// so the test's reads after it measure what the server sends after a cancel.
    func waitForUrgentData() async throws {
        try await self.waitFor("urgent_data", toBe: 1)
    }
}

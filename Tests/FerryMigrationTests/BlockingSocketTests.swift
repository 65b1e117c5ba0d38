import FerryPosix
import FerryTestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// The blocking socket a move's connection and a guest's socket use: each way it can fail says
/// what happened and with whom, and none waits past its patience.
@Suite struct BlockingSocketTests {
    @Test func aPortNothingListensOnIsRefusedAtOnceNamingTheAddress() throws {
        let closed = try ClosedPort()
        let started = ContinuousClock.now
        #expect(throws: PosixError("cannot connect to 127.0.0.1:\(closed.port)", reason: "Connection refused")) {
            try BlockingSocket.connect(host: "127.0.0.1", port: closed.port, patience: .eachCall(.seconds(30)))
        }
        #expect(ContinuousClock.now - started < .seconds(5), "refused, not waited out")
        #expect(throws: PosixError.self, "a host name is not looked up when only addresses are taken") {
            try BlockingSocket.connect(
                host: "localhost",
                port: closed.port,
                patience: .eachCall(.seconds(1)),
                numericHostOnly: true
            )
        }
    }

    @Test func aSilentPeerIsGivenUpAtThePatienceAndAClosedOneSaysSo() throws {
        let listener = try BoundSocket.open(host: "127.0.0.1", port: 0)
        defer { close(listener.fd) }
        let port = listener.address.port
        let socket = try BlockingSocket.connect(host: "127.0.0.1", port: port, patience: .eachCall(.milliseconds(200)))
        defer { socket.close() }
        var byte: UInt8 = 0
        func receive() throws {
            try withUnsafeMutableBytes(of: &byte) { try socket.receive(into: $0) }
        }
        #expect(throws: PosixError("receiving from 127.0.0.1:\(port)", reason: "nothing came for 0.2 seconds")) {
            try receive()
        }
        let peer = accept(listener.fd, nil, nil)
        try #require(peer >= 0)
        #expect(write(peer, "F", 1) == 1)
        try receive()
        #expect(byte == UInt8(ascii: "F"), "what the peer sent arrives")
        close(peer)
        #expect(throws: PosixError("receiving from 127.0.0.1:\(port)", reason: "it closed the connection")) {
            try receive()
        }
    }

    @Test func oneDeadlineBoundsTheWholeExchange() throws {
        let listener = try BoundSocket.open(host: "127.0.0.1", port: 0)
        defer { close(listener.fd) }
        let deadline = ContinuousClock.now + .milliseconds(300)
        let socket = try BlockingSocket.connect(
            host: "127.0.0.1",
            port: listener.address.port,
            patience: .until(deadline)
        )
        defer { socket.close() }
        var byte: UInt8 = 0
        #expect(throws: PosixError.self) {
            try withUnsafeMutableBytes(of: &byte) { try socket.receive(into: $0) }
        }
        #expect(ContinuousClock.now >= deadline, "waited until the deadline")
        #expect(ContinuousClock.now - deadline < .seconds(5), "and not for long past it")
        #expect(
            throws: PosixError(
                "sending to 127.0.0.1:\(listener.address.port)",
                reason: "it took nothing before the deadline"
            )
        ) {
            try [UInt8(1)].withUnsafeBytes { try socket.send($0) }
        }
    }
}

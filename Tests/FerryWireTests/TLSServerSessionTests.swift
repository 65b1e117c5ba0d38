import FerryTestSupport
import NIOCore
import NIOEmbedded
import NIOSSL
import Testing

@testable import FerryWire

/// TLS for a loop of Ferry's own, as a member client and a stranger meet it: bytes shuttled in
/// memory between the session and NIOSSL's client in an `EmbeddedChannel`.
@Suite struct TLSServerSessionTests {
    let cluster: TemporaryDirectory
    let member: ClusterCredentials

    init() throws {
        self.cluster = try TemporaryDirectory()
        try ClusterAuthority.create(in: self.cluster.path + "/tls", memberName: "member")
        self.member = try #require(try ClusterCredentials.load(from: self.cluster.path + "/tls"))
    }

    /// A client's TLS with `credentials`, connected, its hello written.
    static func client(_ credentials: ClusterCredentials) throws -> EmbeddedChannel {
        let client = EmbeddedChannel()
        try client.pipeline.syncOperations.addClientTLS(credentials)
        try client.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        return client
    }

    /// Moves what each side wrote to the other until neither writes; returns what the session
    /// decrypted.
    static func shuttle(_ client: EmbeddedChannel, _ session: TLSServerSession) throws -> ByteBuffer {
        var plaintext = ByteBuffer()
        while true {
            var toServer = ByteBuffer()
            while var record = try client.readOutbound(as: ByteBuffer.self) { toServer.writeBuffer(&record) }
            var toClient = ByteBuffer()
            if toServer.readableBytes > 0 { try session.open(&toServer, into: &plaintext, records: &toClient) }
            if toClient.readableBytes > 0 { try client.writeInbound(toClient) }
            if toServer.readableBytes == 0 && toClient.readableBytes == 0 { return plaintext }
        }
    }

    @Test func aMemberTalksBothWaysAndTheEndedSessionIsFreed() throws {
        weak var released: EmbeddedChannel?
        do {
            let session = try TLSServerSession(credentials: self.member)
            released = session.channel
            let client = try Self.client(self.member)
            _ = try Self.shuttle(client, session)

            client.writeAndFlush(ByteBuffer(string: "a request"), promise: nil)
            #expect(try Self.shuttle(client, session) == ByteBuffer(string: "a request"))

            var answer = ByteBuffer(string: "its answer")
            var records = ByteBuffer()
            try session.seal(&answer, into: &records)
            #expect(answer.readableBytes == 0)
            try client.writeInbound(records)
            #expect(try client.readInbound(as: ByteBuffer.self) == ByteBuffer(string: "its answer"))

            // Its connection closed: a session that is not torn down keeps its channel, its
            // pipeline and its handler's TLS state (34 KB a connection measured in the kv service).
            session.end()

        }
        #expect(released == nil, "the ended session let go of its channel")
    }

    @Test func aPeerWithoutACertificateIsRefusedWithAnAlertThatSaysSo() throws {
        // It trusts the cluster's authority, so that the refusal is the server's.
        var configuration = TLSConfiguration.makeClientConfiguration()
        configuration.minimumTLSVersion = .tlsv13
        configuration.trustRoots = .file(self.cluster.path + "/tls/ca.pem")
        configuration.certificateVerification = .noHostnameVerification
        let client = EmbeddedChannel()
        try client.pipeline.syncOperations.addHandler(
            try NIOSSLClientHandler(context: try NIOSSLContext(configuration: configuration), serverHostname: nil)
        )
        try client.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        let session = try TLSServerSession(credentials: self.member)
        defer { session.end() }

        var refused: (any Error)?
        var alert = ByteBuffer()
        for _ in 0..<8 where refused == nil {
            var toServer = ByteBuffer()
            while var record = try client.readOutbound(as: ByteBuffer.self) { toServer.writeBuffer(&record) }
            var plaintext = ByteBuffer()
            var toClient = ByteBuffer()
            do {
                try session.open(&toServer, into: &plaintext, records: &toClient)
            } catch {
                refused = error
                alert = toClient
            }
            #expect(plaintext.readableBytes == 0, "nothing is read from a peer not admitted")
            if refused == nil, toClient.readableBytes > 0 { _ = try? client.writeInbound(toClient) }
        }
        let error = try #require(refused, "the session refuses a peer without a certificate")
        #expect(HandshakeFailure.reason(error) == "it presented no certificate", "\(error)")
        #expect(session.isClosed)
        // The alert reaches the client, which fails its handshake with the reason.
        #expect(alert.readableBytes > 0)
        #expect(throws: (any Error).self) { try client.writeInbound(alert) }
    }
}

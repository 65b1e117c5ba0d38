import FerryEndpoints
import FerryPosix
import FerryTestSupport
import FerryWire
import Foundation
import NIOCore
import NIOPosix
import NIOSSL
import Testing

@testable import FerryCommands
@testable import FerryQuickAnswers

/// What `ferry` answers before its parser starts must be what the parser's command prints, and
/// everything it cannot answer so must reach the parser.
@Suite(.onThreadsOfTheirOwn) struct QuickAnswerTests {
    @Test func theHelpIsTheParsersByteForByte() {
        let parser = FerryCommand.helpMessage(columns: 80) + "\n"
        #expect(
            TopLevelHelp.text == parser,
            "Sources/FerryQuickAnswers/TopLevelHelp.swift holds an old help; the parser's is:\n\(parser)"
        )
    }

    @Test func aPlainLookupIsAnsweredAsTheCommandPrintsIt() async throws {
        try await withDaemon { daemon, address in
            let client = try await EndpointClient.connect(host: "127.0.0.1", port: daemon.port)
            defer { Task { await client.close() } }
            _ = try await client.register(
                "web",
                endpoints: [.init(host: "127.0.0.1", port: 8080), .init(host: "::1", port: 8081)],
                metadata: ["zone": "b", "weight": "2"],
                ttl: .seconds(600)
            )
            let answer = try #require(
                QuickAnswers.answer(["endpoints", "--addr", address, "lookup", "web"], credentials: nil)
            )
            let entry = try #require(try await client.lookup("web").first)
            #expect(answer.hasPrefix("web 127.0.0.1:8080,[::1]:8081 lease=\(entry.leaseID) expires-in="))
            #expect(answer.hasSuffix("s weight=2 zone=b\n"), "metadata sorted by key, one line per entry")
            #expect(
                QuickAnswers.answer(["endpoints", "--addr=\(address)", "lookup", "web"], credentials: nil)?.hasPrefix(
                    "web "
                ) == true
            )

            let credentials = try TemporaryDirectory()
            try Data("-----BEGIN CERTIFICATE-----".utf8).write(to: URL(fileURLWithPath: credentials.path + "/cert.pem"))
            #expect(
                QuickAnswers.answer(["endpoints", "--addr", address, "lookup", "web"], credentials: credentials.path)
                    == nil,
                "credentials that do not load: left to the parser, which says why"
            )
        }
    }

    /// With the cluster's credentials the lookup speaks TLS, as the parser's command does, and
    /// only to a member of the same cluster.
    @Test func withClusterCredentialsTheLookupSpeaksTLSToMembersOnly() async throws {
        let cluster = try TemporaryDirectory()
        let credentials = cluster.path + "/tls"
        try ClusterAuthority.create(in: credentials, memberName: "member")
        let environment = ["FERRY_CREDENTIALS": credentials]
        let daemon = try FerryProcess(["endpointd", "--port", "0"], environment: environment)
        let address = String(try #require(daemon.nextLine()).dropFirst("listening on ".count))
        defer { _ = daemon.stop(SIGTERM) }
        let registered = try FerryProcess(
            ["endpoints", "--addr", address, "register", "--once", "--ttl", "600", "web", "127.0.0.1:1"],
            environment: environment
        )
        #expect(registered.finish().status == 0)

        let lookup = ["endpoints", "--addr", address, "lookup", "web"]
        let answer = try #require(QuickAnswers.answer(lookup, credentials: credentials))
        #expect(answer.hasPrefix("web 127.0.0.1:1 lease="))
        #expect(QuickAnswers.answer(lookup, credentials: nil) == nil, "without credentials: left to the parser")
        let elsewhere = try TemporaryDirectory()
        try ClusterAuthority.create(in: elsewhere.path + "/tls", memberName: "intruder")
        #expect(
            QuickAnswers.answer(lookup, credentials: elsewhere.path + "/tls") == nil,
            "another cluster's member is refused at the handshake: left to the parser"
        )

        let quick = try FerryProcess(lookup, environment: environment).finish()
        let parsed = try FerryProcess(["endpoints", "lookup", "web", "--addr", address], environment: environment)
            .finish()
        #expect(quick.status == 0 && parsed.status == 0)
        let withoutExpiry = { (line: String) in line.replacing(/expires-in=[0-9.]+s/, with: "expires-in=") }
        #expect(withoutExpiry(quick.output) == withoutExpiry(parsed.output))
    }

    /// A server whose certificate is not from the cluster's authority is not believed, even one
    /// that asks nothing of the client and answers with a well-formed entry.
    @Test func aServerOfAnotherClusterIsNotBelieved() async throws {
        let cluster = try TemporaryDirectory()
        try ClusterAuthority.create(in: cluster.path + "/tls", memberName: "member")
        let elsewhere = try TemporaryDirectory()
        try ClusterAuthority.create(in: elsewhere.path + "/tls", memberName: "impostor")
        var configuration = TLSConfiguration.makeServerConfiguration(
            certificateChain: try NIOSSLCertificate.fromPEMFile(elsewhere.path + "/tls/cert.pem").map {
                .certificate($0)
            },
            privateKey: .privateKey(try NIOSSLPrivateKey(file: elsewhere.path + "/tls/key.pem", format: .pem))
        )
        configuration.certificateVerification = .none
        let context = try NIOSSLContext(configuration: configuration)
        let impostor = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: context))
                    try channel.pipeline.syncOperations.addFrameCodec(logger: TestLog.logger("impostor"))
                    try channel.pipeline.syncOperations.addHandler(AnswersEveryLookup())
                }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        defer { impostor.close(promise: nil) }
        let lookup = ["endpoints", "--addr", "127.0.0.1:\(impostor.localAddress!.port!)", "lookup", "web"]
        #expect(QuickAnswers.answer(lookup, credentials: cluster.path + "/tls") == nil)
        #expect(
            QuickAnswers.answer(lookup, credentials: elsewhere.path + "/tls")
                == "web 127.0.0.1:1 lease=7 expires-in=60.0s\n",
            "the impostor's own member believes it: what the first lookup refused was its certificate"
        )
    }

    /// Each of these the parser does (and words its errors): a quick answer would differ from it.
    @Test func everythingElseIsLeftToTheParser() async throws {
        try await withDaemon { daemon, address in
            let client = try await EndpointClient.connect(host: "127.0.0.1", port: daemon.port)
            defer { Task { await client.close() } }
            _ = try await client.register("web", endpoints: [.init(host: "127.0.0.1", port: 8080)], ttl: .seconds(600))
            for arguments in [
                ["endpoints", "--addr", address, "lookup", "nothing-here"],  // the parser says it is not there
                ["endpoints", "--addr", address, "lookup", "web", "--json"],
                ["endpoints", "lookup", "web", "--addr", address],
                ["endpoints", "--addr", "localhost:\(daemon.port)", "lookup", "web"],  // a name to resolve
                ["endpoints", "--addr", address, "lookup", "--help"],
                ["endpoints", "--addr", address, "ls"],
                ["endpoints", "--addr", "127.0.0.1:99999", "lookup", "web"],
                ["kv", "get", "web"],
                ["help", "endpoints"],
            ] {
                #expect(
                    QuickAnswers.answer(arguments, credentials: nil) == nil,
                    "ferry \(arguments.joined(separator: " "))"
                )
            }
        }
    }

    @Test func aDaemonThatIsNotThereIsLeftToTheParserAtOnce() throws {
        let closed = try ClosedPort()
        let started = ContinuousClock.now
        #expect(self.lookUp(at: closed.port) == nil)
        #expect(ContinuousClock.now - started < QuickLookup.patience, "a refused connection is not waited on")
    }

    /// A peer that sends a byte now and then never makes the answer later than the patience.
    @Test func aDaemonThatDripsIsLeftToTheParserWhenThePatienceIsOut() throws {
        let peer = try DrippingPeer()
        let started = ContinuousClock.now
        #expect(self.lookUp(at: peer.port) == nil)
        let waited = ContinuousClock.now - started
        #expect(waited >= QuickLookup.patience && waited < QuickLookup.patience * 2, "waited \(waited)")
    }

    /// As processes: the parser's output for the same lookup, and the parser's own error where
    /// credentials make the command speak TLS (which a plain daemon cannot answer).
    @Test func asProcessesTheQuickAnswerAndTheParserAgree() async throws {
        let daemon = try FerryProcess(["endpointd", "--port", "0"])
        let address = String(try #require(daemon.nextLine()).dropFirst("listening on ".count))
        defer { _ = daemon.stop(SIGTERM) }
        let registered = try FerryProcess([
            "endpoints", "--addr", address, "register", "--once", "--ttl", "600", "web", "127.0.0.1:1",
        ])
        #expect(registered.finish().status == 0)

        let quick = try FerryProcess(["endpoints", "--addr", address, "lookup", "web"]).finish()
        let parsed = try FerryProcess(["endpoints", "lookup", "web", "--addr", address]).finish()
        #expect(quick.status == 0 && parsed.status == 0)
        let withoutExpiry = { (line: String) in line.replacing(/expires-in=[0-9.]+s/, with: "expires-in=") }
        #expect(withoutExpiry(quick.output) == withoutExpiry(parsed.output))
        #expect(quick.output.hasPrefix("web 127.0.0.1:1 lease="))

        let credentials = try TemporaryDirectory()
        try Data("not a certificate".utf8).write(to: URL(fileURLWithPath: credentials.path + "/cert.pem"))
        let secured = try FerryProcess(
            ["endpoints", "--addr", address, "lookup", "web"],
            environment: ["FERRY_CREDENTIALS": credentials.path]
        ).finish()
        #expect(secured.status != 0, "with credentials the command loads them (these are broken) and speaks TLS")
    }

    /// `ferry` hands every command it does not answer to `ferry-runtime` beside it, as the same
    /// process; copied somewhere alone it still prints the help, and says in one line what is
    /// missing for anything else.
    @Test func aFerryWithoutItsRuntimeAnswersTheHelpAndSaysWhatIsMissing() throws {
        // A hard link beside the build, not a copy: a copy's open write descriptor, inherited by
        // a child another test forks meanwhile, makes exec fail with "Text file busy".
        let ferry = try FerryProcess.executable().resolvingSymlinksInPath()
        let alone = ferry.deletingLastPathComponent().appendingPathComponent("alone-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: alone, withIntermediateDirectories: false)
        defer { try? FileManager.default.removeItem(at: alone) }
        let copy = alone.path + "/ferry"
        try FileManager.default.linkItem(atPath: ferry.path, toPath: copy)
        let help = try ChildProcess.run([copy, "--help"])
        #expect(help.status == 0 && help.output == TopLevelHelp.text)
        let other = try ChildProcess.run([copy, "kv", "get", "web"], mergingErrors: true)
        #expect(other.status == 127)
        #expect(
            other.output == "ferry: cannot start \(alone.path)/ferry-runtime: No such file or directory. Every command "
                + "but the help and lookups runs in ferry-runtime, built beside ferry (swift build); install the two "
                + "together.\n"
        )
        let beside = try FerryProcess(["kv", "--help"]).finish()
        #expect(beside.status == 0 && beside.output.hasPrefix("OVERVIEW: Get, put"), "beside it, the runtime answers")
    }

    /// The quick answer to `ferry endpoints --addr 127.0.0.1:PORT lookup web`, without credentials.
    private func lookUp(at port: Int) -> String? {
        QuickAnswers.answer(["endpoints", "--addr", "127.0.0.1:\(port)", "lookup", "web"], credentials: nil)
    }

    private func withDaemon(_ body: (EndpointDaemon, String) async throws -> Void) async throws {
        let daemon = try await EndpointDaemon.bind(host: "127.0.0.1", port: 0, logger: TestLog.logger("endpointd"))
        let running = Task { try await daemon.run() }
        defer { running.cancel() }
        do {
            try await body(daemon, "127.0.0.1:\(daemon.port)")
        } catch {
            await daemon.close()
            throw error
        }
        await daemon.close()
    }
}

/// Accepts one connection and sends it a byte every 300 ms (a frame header needs 20: six seconds).
private final class DrippingPeer: @unchecked Sendable {
    // Sendable: immutable after init; the thread owns the connection.
    let port: Int
    private let listener: Int32

    init() throws {
        let (listener, port) = try bindLoopbackSocket()
        guard listen(listener, 1) == 0 else {
            close(listener)
            throw TestFailure("listening on a loopback port: \(String(cString: strerror(errno)))")
        }
        self.listener = listener
        self.port = port
        Thread {
            let connection = accept(listener, nil, nil)
            guard connection >= 0 else { return }
            defer { close(connection) }
            var byte = UInt8(ascii: "F")
            for _ in 0..<20 where send(connection, &byte, 1, Int32(MSG_NOSIGNAL)) == 1 { usleep(300_000) }
        }.start()
    }

    deinit { close(self.listener) }
}

/// Answers every frame with one entry for `web`, as a daemon would.
private final class AnswersEveryLookup: ChannelInboundHandler {
    typealias InboundIn = Frame
    typealias OutboundOut = Frame

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let request = Self.unwrapInboundIn(data)
        let entry = EndpointEntry(
            name: "web",
            endpoints: [ServiceEndpoint(host: "127.0.0.1", port: 1)],
            metadata: [:],
            leaseID: 7,
            remainingMilliseconds: 60_000
        )
        let answer = Frame(
            EndpointEntries(revision: 1, entries: [entry]),
            flags: .response,
            requestID: request.header.requestID
        )
        context.writeAndFlush(Self.wrapOutboundOut(answer), promise: nil)
    }
}

import FerryTestSupport
import FerryWire
import Foundation
import NIOCore
import Testing

/// Every FerryWire port of a `ferry up` cluster takes only peers with a certificate from the
/// cluster's authority: the processes it started and the commands given its data directory.
@Suite(.serialized) struct ClusterCredentialsTests {
    /// FerryWire's `ping`: every server answers `pong`.
    struct Ping: WireMessage {
        static let kind = MessageKind.ping
        init() {}
        init(from payload: inout ByteBuffer) {}
        func encode(into payload: inout ByteBuffer) {}
    }

    /// The FerryWire addresses in `ferry up`'s summary: the endpoint daemon, the file server's
    /// control endpoint, kv, objects and each node process.
    static func ferryWirePorts(_ summary: [String]) throws -> [String: Int] {
        var ports: [String: Int] = [:]
        for line in summary {
            let words = line.split(separator: " ")
            guard let first = words.first else { continue }
            let address: Substring?
            switch first {
            case "endpoints": address = words.dropFirst(2).first
            case "control", "kv", "objects": address = words.dropFirst().first
            case "node": address = words.dropFirst(2).first
            default: address = nil
            }
            guard let address, let port = address.split(separator: ":").last.flatMap({ Int($0) }) else { continue }
            ports[first == "node" ? String(words[1]) : String(first)] = port
        }
        return ports
    }

    /// Whether a FerryWire server at `port` answers a ping from a client holding `credentials`.
    static func answersPing(port: Int, credentials: ClusterCredentials?) async -> Result<MessageKind, any Error> {
        do {
            let client = try await WireClient.connect(host: "127.0.0.1", port: port, credentials: credentials)
            defer { Task { await client.close() } }
            return .success(try await client.call(Ping(), timeout: .seconds(10)).header.kind)
        } catch {
            return .failure(error)
        }
    }

    @Test func everyFerryWirePortRefusesAPeerWithoutTheClusterCertificate() async throws {
        let up = try DashboardTests.Up()
        defer { _ = up.process.stop(SIGTERM) }
        let ports = try Self.ferryWirePorts(up.summary)
        #expect(Set(ports.keys) == ["endpoints", "control", "kv", "objects", "node-1"], "\(up.summary)")

        let member = try #require(try ClusterCredentials.load(from: up.temporary.path + "/tls"))
        let elsewhere = try TemporaryDirectory()
        try ClusterAuthority.create(in: elsewhere.path + "/tls", memberName: "intruder")
        let intruder = try #require(try ClusterCredentials.load(from: elsewhere.path + "/tls"))

        for (name, port) in ports.sorted(by: { $0.key < $1.key }) {
            let answered = await Self.answersPing(port: port, credentials: member)
            #expect((try? answered.get()) == .pong, "\(name) answers a member: \(answered)")

            let anonymous = await Self.answersPing(port: port, credentials: nil)
            #expect((try? anonymous.get()) == nil, "\(name) refuses a peer without credentials")
            #expect("\(anonymous)".contains("has no cluster credentials"), "\(name): \(anonymous)")

            let foreign = await Self.answersPing(port: port, credentials: intruder)
            #expect((try? foreign.get()) == nil, "\(name) refuses another cluster's certificate")
            #expect("\(foreign)".contains("TLS handshake failed"), "\(name): \(foreign)")
        }
    }

    /// A command without the cluster's credentials is told so by the first refusal, in one line,
    /// rather than retrying until its deadline: no retry can give it a certificate.
    @Test func aCallWithoutCredentialsIsRefusedAtOnceNotAfterItsDeadline() throws {
        let up = try DashboardTests.Up()
        defer { _ = up.process.stop(SIGTERM) }
        let daemon = try #require(up.summary.first { $0.hasPrefix("endpoints on ") }).dropFirst("endpoints on ".count)
        let call = try FerryProcess(
            ["call", "--addr", String(daemon), "--timeout", "30", "counter", "increment", "[1]"],
            errors: .merged
        )
        var lines: [String] = []
        while let line = call.nextLine() { lines.append(line) }
        call.process.waitUntilExit()
        #expect(call.process.terminationStatus != 0)
        #expect(lines.count == 1, "one line: \(lines)")
        #expect(lines.first?.contains("refused this process") == true, "\(lines)")
        #expect(lines.first?.contains("has no cluster credentials") == true, "\(lines)")
        #expect(lines.first?.contains("deadline") == false, "not retried until its deadline: \(lines)")
    }

    /// An object's adoption names the lease its holder had: knowing the number is not enough to
    /// take the object, for a peer without a certificate is refused before its message is read.
    @Test func aStolenLeaseIDAloneCannotAdoptAnObject() async throws {
        let up = try DashboardTests.Up()
        defer { _ = up.process.stop(SIGTERM) }
        let objects = try #require(try Self.ferryWirePorts(up.summary)["objects"])
        let member = try #require(try ClusterCredentials.load(from: up.temporary.path + "/tls"))
        // The object server's lease at the daemon, as anyone who can read a registration sees it.
        let daemon = try #require(up.summary.first { $0.hasPrefix("endpoints on ") }).dropFirst("endpoints on ".count)
        // The object server registers in the background: look until it is there.
        var listing = ""
        _ = try waitUntil(within: .seconds(30)) {
            let lookup = try FerryProcess(
                ["endpoints", "--addr", String(daemon), "--data-dir", up.temporary.path, "lookup", "objects:counter"]
            )
            listing = lookup.nextLine() ?? ""
            return listing.contains("lease=")
        }
        let lease = try #require(
            listing.firstMatch(of: #/lease=(\d+)/#).flatMap { UInt64($0.1) },
            "\(listing)"
        )

        let thief = try await WireClient.connect(host: "127.0.0.1", port: objects, credentials: nil)
        let stolen = await Result {
            try await thief.call(ObjectAdopt(object: "counter/stolen", state: [1, 2, 3], fromLease: lease))
        }
        #expect((try? stolen.get()) == nil, "the adopt is never read: \(stolen)")
        await thief.close()

        // A member still reaches the object server, and it holds no object the thief named.
        let listed = try await WireClient.connect(host: "127.0.0.1", port: objects, credentials: member)
        let answer = try await listed.call(ObjectList()).decode(as: ObjectListing.self)
        #expect(!answer.objects.contains { $0.object == "counter/stolen" })
        await listed.close()
    }
}

import FerryPosix
import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// A throw-away etcd cluster of real `etcd` processes (Debian's `etcd-server`) on loopback
/// ports, each member with its data in a temporary directory: what the registry's tests on etcd
/// run against. Short election timings, so that a lost leader is replaced within a second; no fsync, as nothing here outlives the test.
public final class EtcdCluster: @unchecked Sendable {
    // @unchecked Sendable: `members` is only touched under `lock`.
    /// The etcd binary, or nil when it is not installed (the tests then skip, saying so).
    public static let binary: String? = ["/usr/bin/etcd", "/usr/local/bin/etcd"].first {
        FileManager.default.isExecutableFile(atPath: $0)
    }
    public static let missing = "etcd is not installed (Debian: apt-get install etcd-server)"

    /// Each member's client port on 127.0.0.1.
    public let clientPorts: [Int]
    private let directory: TemporaryDirectory
    private let lock = NSLock()
    private var members: [ChildProcess?]
    private let arguments: [[String]]

    /// Starts `count` members and returns once every one says it is healthy.
    public init(members count: Int = 3) throws {
        guard let binary = Self.binary else { throw TestFailure(Self.missing) }
        self.directory = try TemporaryDirectory()
        // Free ports: bound and let go just before etcd binds them; distinct, since a port let go
        // may be handed out again by the next bind.
        var ports: [Int] = []
        while ports.count < 2 * count {
            let port = try ClosedPort().port
            if !ports.contains(port) { ports.append(port) }
        }
        let clientPorts = Array(ports.prefix(count))
        let path = self.directory.path
        self.clientPorts = clientPorts
        let peerPorts = Array(ports.suffix(count))
        let initial = (0..<count).map { "m\($0)=http://127.0.0.1:\(peerPorts[$0])" }.joined(separator: ",")
        let token = "ferry-test-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        self.arguments = (0..<count).map { member in
            [
                "--name", "m\(member)", "--data-dir", path + "/m\(member)",
                "--listen-client-urls", "http://127.0.0.1:\(clientPorts[member])",
                "--advertise-client-urls", "http://127.0.0.1:\(clientPorts[member])",
                "--listen-peer-urls", "http://127.0.0.1:\(peerPorts[member])",
                "--initial-advertise-peer-urls", "http://127.0.0.1:\(peerPorts[member])",
                "--initial-cluster", initial, "--initial-cluster-state", "new",
                "--initial-cluster-token", token,
                "--heartbeat-interval", "50", "--election-timeout", "500", "--unsafe-no-fsync",
                "--logger", "zap", "--log-level", "error",
            ]
        }
        self.members = []
        for member in 0..<count {
            self.members.append(try self.launch(binary, member: member))
        }
        do {
            for member in 0..<count { try self.waitUntilHealthy(member: member) }
        } catch {
            self.close()
            throw error
        }
    }

    deinit { self.close() }

    /// One cluster for the whole test process, started at its first use and stopped when the
    /// process exits: a cluster per test made a parallel run start a dozen etcd processes at
    /// once and starved the other suites. Tests on it keep to names or keys of their own. A test
    /// that kills a member starts its own cluster instead.
    public static func shared() throws -> EtcdCluster {
        try Self.sharedLock.withLock {
            if let cluster = Self.sharedCluster { return cluster }
            let cluster = try EtcdCluster()
            Self.sharedCluster = cluster
            atexit { EtcdCluster.sharedLock.withLock { EtcdCluster.sharedCluster?.close() } }
            return cluster
        }
    }

    private static let sharedLock = NSLock()
    nonisolated(unsafe) private static var sharedCluster: EtcdCluster?

    /// `etcd://` with every member.
    public var url: String { "etcd://" + self.clientPorts.map { "127.0.0.1:\($0)" }.joined(separator: ",") }

    /// Kills member `index` with SIGKILL and waits for its end.
    public func kill(member index: Int) {
        let process = self.lock.withLock { () -> ChildProcess? in
            defer { self.members[index] = nil }
            return self.members[index]
        }
        process?.signal(SIGKILL)
        _ = process?.wait()
    }

    /// Starts member `index` again on its data (after ``kill(member:)``) and waits until it is
    /// healthy.
    public func restart(member index: Int) throws {
        guard let binary = Self.binary else { throw TestFailure(Self.missing) }
        let process = try self.launch(binary, member: index)
        self.lock.withLock { self.members[index] = process }
        try self.waitUntilHealthy(member: index)
    }

    /// The member that leads now, as its members that are up see it.
    public func leader() throws -> Int {
        var ids: [Int: String] = [:]
        var leader: String?
        for member in self.clientPorts.indices {
            guard let client = try? TestClient(port: self.clientPorts[member], timeout: 2) else { continue }
            defer { client.close() }
            try client.send(
                "POST /v3/maintenance/status HTTP/1.1\r\nHost: etcd\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}"
            )
            guard let answer = try? client.readResponse(),
                let json = try? JSONSerialization.jsonObject(with: Data(answer.body)) as? [String: Any],
                let header = json["header"] as? [String: Any], let id = header["member_id"] as? String
            else { continue }
            ids[member] = id
            leader = leader ?? (json["leader"] as? String)
        }
        guard let leader, let index = ids.first(where: { $0.value == leader })?.key else {
            throw TestFailure("no etcd member says which member leads")
        }
        return index
    }

    private func launch(_ binary: String, member: Int) throws -> ChildProcess {
        let log = open(self.directory.path + "/m\(member).log", O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o644)
        defer { Glibc.close(log) }
        return try ChildProcess(binary, self.arguments[member], standardOutput: log, standardError: log)
    }

    /// Stops every member.
    public func close() {
        let processes = self.lock.withLock { () -> [ChildProcess] in
            defer { self.members = self.members.map { _ in nil } }
            return self.members.compactMap { $0 }
        }
        for process in processes { process.signal(SIGTERM) }
        for process in processes { _ = process.wait() }
    }

    /// Asks `GET /health` until the member answers `"health":"true"` (it does once the cluster
    /// has a leader: after a kill, once the others have elected one), for at most 20 seconds;
    /// then fails with the member's log.
    public func waitUntilHealthy(member: Int) throws {
        let deadline = MonotonicClock.nanoseconds() + 20_000_000_000
        while MonotonicClock.nanoseconds() < deadline {
            if let client = try? TestClient(port: self.clientPorts[member], timeout: 2),
                let answer = client.fetch("/health"), answer.text.contains("\"true\"")
            {
                return
            }
            // The member is not listening or has no leader yet: ask again shortly.
            usleep(50_000)
        }
        let log = (try? String(contentsOfFile: self.directory.path + "/m\(member).log", encoding: .utf8)) ?? ""
        throw TestFailure("etcd member m\(member) was not healthy within 20 s; its log: \(log.suffix(2000))")
    }
}

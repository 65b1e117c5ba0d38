import FerryPosix
import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// A throw-away PostgreSQL server (Debian's `postgresql`): a cluster made by `initdb` in a
/// temporary directory, served on a free loopback port with trust authentication, for the stores'
/// tests on PostgreSQL. Run as root (as here and in CI), the server runs as the `postgres` user,
/// since PostgreSQL refuses to run as root. Each test asks for a database of its own.
public final class PostgresServer: @unchecked Sendable {
    // @unchecked Sendable: `server` and `databases` are only touched under `lock`.
    /// The directory of PostgreSQL's programs, or nil when it is not installed.
    public static let binaries: String? = {
        let versions = (try? FileManager.default.contentsOfDirectory(atPath: "/usr/lib/postgresql")) ?? []
        return versions.sorted { (Int($0) ?? 0) > (Int($1) ?? 0) }.map { "/usr/lib/postgresql/\($0)/bin" }.first {
            FileManager.default.isExecutableFile(atPath: $0 + "/initdb")
        }
    }()
    public static let missing = "PostgreSQL is not installed (Debian: apt-get install postgresql)"

    public let port: Int
    private let directory: TemporaryDirectory
    private let lock = NSLock()
    private var server: ChildProcess?
    private var databases = 0

    /// Makes the cluster, starts the server and returns once it takes connections.
    public init() throws {
        guard let binaries = Self.binaries else { throw TestFailure(Self.missing) }
        self.directory = try TemporaryDirectory()
        self.port = try ClosedPort().port
        // Copied at once: getpwnam's result lives in a buffer that any thread's next look-up of a
        // user overwrites (a server once started as another user: "could not access directory").
        let owner: passwd? = getuid() == 0 ? getpwnam("postgres")?.pointee : nil
        if getuid() == 0, owner == nil {
            throw TestFailure(
                "running as root needs a 'postgres' user to run PostgreSQL as (Debian's package makes it)"
            )
        }
        if let owner { chown(self.directory.path, owner.pw_uid, owner.pw_gid) }
        let data = self.directory.path + "/data"
        try Self.run(
            binaries + "/initdb",
            ["-D", data, "-U", "ferry", "--auth=trust", "-E", "UTF8", "--no-sync"],
            as: owner,
            log: self.directory.path + "/initdb.log"
        )
        self.server = try Self.start(
            binaries + "/postgres",
            [
                "-D", data, "-p", String(self.port), "-k", self.directory.path,
                "-c", "listen_addresses=127.0.0.1", "-c", "max_connections=200",
            ],
            as: owner,
            log: self.directory.path + "/server.log"
        )
        try self.waitUntilReady(binaries)
    }

    deinit { self.close() }

    /// One server for the whole test process, started at its first use and stopped when the
    /// process exits. Tests on it keep to databases of their own (``database()``).
    public static func shared() throws -> PostgresServer {
        try Self.sharedLock.withLock {
            if let server = Self.sharedServer { return server }
            let server = try PostgresServer()
            Self.sharedServer = server
            atexit { PostgresServer.sharedLock.withLock { PostgresServer.sharedServer?.close() } }
            return server
        }
    }

    private static let sharedLock = NSLock()
    nonisolated(unsafe) private static var sharedServer: PostgresServer?

    /// A new, empty database; its URL.
    public func database() throws -> String {
        guard let binaries = Self.binaries else { throw TestFailure(Self.missing) }
        let name = self.lock.withLock { () -> String in
            self.databases += 1
            return "ferry_test_\(self.databases)"
        }
        try Self.run(
            binaries + "/createdb",
            ["-h", "127.0.0.1", "-p", String(self.port), "-U", "ferry", name],
            as: nil,
            log: self.directory.path + "/createdb.log"
        )
        return "postgres://ferry@127.0.0.1:\(self.port)/\(name)?sslmode=disable"
    }

    /// Stops the server (a fast shutdown: its sessions end, what was committed stays).
    public func close() {
        let server = self.lock.withLock { () -> ChildProcess? in
            defer { self.server = nil }
            return self.server
        }
        server?.signal(SIGINT)
        _ = server?.wait()
    }

    private func waitUntilReady(_ binaries: String) throws {
        let deadline = MonotonicClock.nanoseconds() + 30_000_000_000
        while MonotonicClock.nanoseconds() < deadline {
            let check = try ChildProcess(
                binaries + "/pg_isready",
                ["-q", "-h", "127.0.0.1", "-p", String(self.port), "-U", "ferry"]
            )
            if check.wait() == .exited(0) { return }
            // Not taking connections yet: ask again shortly.
            usleep(50_000)
        }
        let log = (try? String(contentsOfFile: self.directory.path + "/server.log", encoding: .utf8)) ?? ""
        throw TestFailure("PostgreSQL did not take connections within 30 s; its log: \(log.suffix(2000))")
    }

    /// `program` with `arguments`, as `user` (through setpriv) when given; its output to `log`.
    private static func start(
        _ program: String,
        _ arguments: [String],
        as user: passwd?,
        log: String
    ) throws
        -> ChildProcess
    {
        let output = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o644)
        defer { Glibc.close(output) }
        if let user {
            fchown(output, user.pw_uid, user.pw_gid)
            return try ChildProcess(
                "/usr/bin/setpriv",
                ["--reuid=\(user.pw_uid)", "--regid=\(user.pw_gid)", "--init-groups", "--", program] + arguments,
                environment: ["HOME": "/tmp", "LC_ALL": "C.UTF-8", "PATH": "/usr/bin:/bin"],
                standardOutput: output,
                standardError: output
            )
        }
        return try ChildProcess(program, arguments, standardOutput: output, standardError: output)
    }

    private static func run(_ program: String, _ arguments: [String], as user: passwd?, log: String) throws {
        let status = try Self.start(program, arguments, as: user, log: log).wait()
        guard status == .exited(0) else {
            let text = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
            throw TestFailure("\(program) \(arguments.joined(separator: " ")) failed (\(status)): \(text.suffix(2000))")
        }
    }
}

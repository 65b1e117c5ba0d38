import FerryPosix
import FerryTestSupport
import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// A cluster of real processes for the migration tests: an endpoint daemon and `ferry node`s,
/// each a process of its own, driven with the `ferry` commands a user would type.
final class TestCluster: @unchecked Sendable {
    // Sendable: used by one test at a time.
    final class Member {
        let name: String
        private let running: FerryProcess
        var process: ChildProcess { self.running.process }
        let endpoint: String
        /// A node's migration port (host:port).
        let migrationEndpoint: String?

        /// - Parameter hiding: a directory this member sees empty: it runs in a mount namespace of
        ///   its own with a tmpfs there, as another machine would not have the directory.
        init(
            _ name: String,
            _ arguments: [String],
            environment: [String: String],
            log: String,
            hiding: String? = nil
        ) throws {
            self.name = name
            let wrapper =
                hiding.map {
                    [
                        "/usr/bin/unshare", "--mount", "--propagation", "private", "sh", "-c",
                        "mount -t tmpfs ferry-hidden '\($0)' && exec \"$0\" \"$@\"",
                    ]
                } ?? []
            self.running = try FerryProcess(arguments, errors: .file(log), environment: environment, under: wrapper)
            let first = self.running.nextLine() ?? ""
            guard first.hasPrefix("listening on ") else {
                throw TestCluster.Failure("\(name) did not start: '\(first)' (see \(log))")
            }
            self.endpoint = String(first.dropFirst("listening on ".count))
            // A node says its migration port next.
            let second = arguments.first == "node" ? self.running.nextLine() ?? "" : ""
            self.migrationEndpoint = second.hasPrefix("migration on ") ? String(second.dropFirst(13)) : nil
            self.running.drainOutput()
        }

        /// Whether it exits within `seconds` (a test never waits without end).
        func exited(within seconds: Double) -> Bool {
            let deadline = Date(timeIntervalSinceNow: seconds)
            while self.process.isRunning, Date() < deadline { usleep(20_000) }
            return !self.process.isRunning
        }

        /// `kill -9`, and wait for it to be gone.
        func kill9() {
            kill(self.process.processIdentifier, SIGKILL)
            self.process.waitUntilExit()
        }
    }

    struct Failure: Error, CustomStringConvertible {
        let description: String
        init(_ description: String) { self.description = description }
    }

    /// What a command did.
    struct Result: Sendable {
        var status: Int32
        var output: String
        var error: String
    }

    private let temporary: TemporaryDirectory
    var directory: String { self.temporary.path }
    let daemon: Member
    let key: String
    let publicKey: String
    private(set) var nodes: [String: Member] = [:]
    /// The cluster's credentials, when it is secured: every process and command uses them.
    let credentials: String?
    /// How nodes and commands find the cluster: the daemon (`--endpoints`), or etcd
    /// (`--registry etcd://...`) when the cluster was made on one.
    let registryFlags: [String]

    /// - Parameters:
    ///   - secured: whether the cluster has an authority (`ferry ca init`) whose certificate
    ///     every daemon, node and command presents, as `ferry up` makes one.
    ///   - registry: an etcd cluster's `etcd://` URL that nodes and commands use instead of the
    ///     daemon.
    init(secured: Bool = false, registry: String? = nil) throws {
        let temporary = try TemporaryDirectory()
        self.temporary = temporary
        self.credentials = secured ? temporary.path + "/tls" : nil
        if secured {
            let made = try Self.run(["ca", "init", "--data-dir", temporary.path], in: temporary.path, environment: [:])
            guard made.status == 0 else { throw Failure("ferry ca init failed: \(made.error)") }
        }
        self.daemon = try Member(
            "endpointd",
            ["endpointd", "--port", "0"],
            environment: self.credentials.map { ["FERRY_CREDENTIALS": $0] } ?? [:],
            log: temporary.path + "/endpointd.log"
        )
        self.registryFlags = registry.map { ["--registry", $0] } ?? ["--endpoints", self.daemon.endpoint]
        self.key = temporary.path + "/keys/ferry.key"
        self.publicKey = temporary.path + "/keys/ferry.pub"
        let keys = try self.ferry(["keys", "generate", "--out", self.directory + "/keys"])
        guard keys.status == 0 else { throw Failure("ferry keys generate failed: \(keys.error)") }
    }

    deinit {
        for node in self.nodes.values { node.kill9() }
        self.daemon.kill9()
    }

    /// Starts (or starts again, on the same data directory) node `name`.
    @discardableResult
    func start(
        _ name: String,
        crashAt: String? = nil,
        trust: Bool = true,
        hiding: String? = nil,
        extra: [String] = []
    ) throws -> Member {
        var arguments =
            [
                "node", "--name", name, "--port", "0", "--data-dir", "\(self.directory)/\(name)",
            ] + self.registryFlags
        arguments += trust ? ["--trust", self.publicKey] : ["--allow-unsigned"]
        if let credentials { arguments += ["--credentials", credentials] }
        let node = try Member(
            name,
            arguments + extra,
            environment: crashAt.map { ["FERRY_CRASH_AT": $0] } ?? [:],
            log: "\(self.directory)/\(name).log",
            hiding: hiding
        )
        self.nodes[name] = node
        return node
    }

    func node(_ name: String) -> Member { self.nodes[name]! }

    /// A node's log so far, for a failing test to show.
    func log(_ name: String) -> String {
        (try? String(contentsOfFile: "\(self.directory)/\(name).log", encoding: .utf8)) ?? ""
    }

    /// Runs `ferry ARGUMENTS` to the end (at most `timeout` seconds).
    @discardableResult
    func ferry(_ arguments: [String], timeout: Double = 120, environment: [String: String] = [:]) throws -> Result {
        let credentials = self.credentials.map { ["FERRY_CREDENTIALS": $0] } ?? [:]
        return try Self.run(
            arguments,
            in: self.directory,
            timeout: timeout,
            environment: credentials.merging(environment) { $1 }
        )
    }

    private static func run(
        _ arguments: [String],
        in directory: String,
        timeout: Double = 120,
        environment: [String: String]
    ) throws -> Result {
        let output = Pipe()
        // Standard error to a file: read after the end, it can never fill and block the command.
        let errorPath = "\(directory)/command-\(UUID().uuidString).err"
        let errorDescriptor = open(errorPath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        defer { try? FileManager.default.removeItem(atPath: errorPath) }
        let process = try ChildProcess(
            try FerryProcess.executable().path,
            arguments,
            environment: FerryProcess.environment.merging(environment) { $1 },
            standardOutput: output.fileHandleForWriting.fileDescriptor,
            standardError: errorDescriptor
        )
        close(errorDescriptor)
        try? output.fileHandleForWriting.close()
        let timer = DispatchWorkItem { if process.isRunning { process.terminate() } }
        DispatchQueue.global().asyncAfter(deadline: .now() + timeout, execute: timer)
        let outputData = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        timer.cancel()
        return Result(
            status: process.terminationStatus,
            output: String(decoding: outputData, as: UTF8.self),
            error: (try? String(contentsOfFile: errorPath, encoding: .utf8)) ?? ""
        )
    }

    /// Runs a process command against this cluster's registry.
    @discardableResult
    func run(_ command: String, _ arguments: [String], timeout: Double = 120) throws -> Result {
        try self.ferry([command] + self.registryFlags + arguments, timeout: timeout)
    }

    /// Signs an example guest with the cluster's key; the signed module's path.
    func signed(_ guest: String) throws -> String {
        let out = "\(self.directory)/\(guest).signed.wasm"
        if FileManager.default.fileExists(atPath: out) { return out }
        let result = try self.ferry(["sign", Self.guest(guest), "--key", self.key, "--out", out])
        guard result.status == 0 else { throw Failure("ferry sign failed: \(result.error)") }
        return out
    }

    /// Where the process is listed, as `ferry ps --json` says: (node, state, epoch, moves) per listing.
    func listings(of name: String) throws -> [(node: String, state: String, epoch: Int, moves: Int)] {
        try self.listings().filter { $0.name == name }.map { ($0.node, $0.state, $0.epoch, $0.moves) }
    }

    /// Every process as `ferry ps --json` lists it.
    func listings() throws -> [(name: String, node: String, state: String, epoch: Int, moves: Int)] {
        let result = try self.run("ps", ["--json"])
        guard let rows = try JSONSerialization.jsonObject(with: Data(result.output.utf8)) as? [[String: Any]] else {
            throw Failure("ferry ps --json printed no array: \(result.output) \(result.error)")
        }
        return rows.map {
            (
                $0["name"] as? String ?? "", $0["node"] as? String ?? "", $0["state"] as? String ?? "",
                $0["epoch"] as? Int ?? 0, $0["moves"] as? Int ?? 0
            )
        }
    }

    static func guest(_ name: String) -> String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("Guests/\(name).wasm").path
    }

}

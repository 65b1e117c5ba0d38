import FerryEndpoints
import FerryMigration
import FerryPosix
import FerryWire
import Foundation
import Logging
import NIOConcurrencyHelpers
import ServiceLifecycle

/// The nodes of a local cluster, each a `ferry node` process of its own, started and kept running
/// by `ferry up`: a node that dies (say, `kill -9`) is started again on its data directory, where
/// it takes its processes back. Every node trusts the cluster's signing key, which is made on
/// first use in the data directory.
public final class NodeProcesses: Service, Sendable {
    public struct Node: Sendable {
        public let name: String
        public let endpoint: ServiceEndpoint
        public let dataDirectory: String
    }

    public let nodes: [Node]
    /// The cluster's key pair: `ferry sign MODULE --key KEY` makes code every node runs.
    public let keyFile: String
    public let publicKeyFile: String
    private let executable: String
    private let arguments: [String: [String]]
    private let running = NIOLockedValueBox<[String: ChildProcess]>([:])
    private let stopping = NIOLockedValueBox(false)
    private let logger: Logger

    private init(
        nodes: [Node],
        keyFile: String,
        publicKeyFile: String,
        executable: String,
        arguments: [String: [String]],
        running: [String: ChildProcess],
        logger: Logger
    ) {
        self.nodes = nodes
        self.keyFile = keyFile
        self.publicKeyFile = publicKeyFile
        self.executable = executable
        self.arguments = arguments
        self.running.withLockedValue { $0 = running }
        self.logger = logger
    }

    /// Starts `count` nodes (`node-1`…), each registered at `daemon`, and waits for each to say
    /// where it listens.
    public static func start(
        count: Int,
        host: String,
        daemon: ServiceEndpoint,
        dataDirectory: String,
        balance: Balancer.Mode = .both,
        tokenFile: String? = nil,
        logger: Logger
    ) throws -> NodeProcesses {
        let keys = (Self.clusterKeyFile(dataDirectory: dataDirectory) as NSString).deletingLastPathComponent
        let (keyFile, publicKeyFile) = try Self.clusterKey(in: keys)
        let executable = Self.ferryExecutable()
        var nodes: [Node] = []
        var arguments: [String: [String]] = [:]
        var running: [String: ChildProcess] = [:]
        for index in 1...count {
            let name = "node-\(index)"
            let data = "\(dataDirectory)/nodes/\(name)"
            try FileManager.default.createDirectory(atPath: data, withIntermediateDirectories: true)
            let nodeArguments =
                [
                    "node", "--name", name, "--host", host, "--port", "0", "--endpoints", "\(daemon)", "--data-dir",
                    data,
                    "--trust", publicKeyFile, "--local", "temperature=\(10 + 7 * index)", "--balance", balance.rawValue,
                    "--credentials", ClusterCredentials.directory(inDataDirectory: dataDirectory),
                ] + (tokenFile.map { ["--http-port", "0", "--http-token-file", $0] } ?? [])
            let (process, endpoint) = try Self.launch(executable, nodeArguments)
            nodes.append(Node(name: name, endpoint: endpoint, dataDirectory: data))
            arguments[name] = nodeArguments
            running[name] = process
        }
        let group = NodeProcesses(
            nodes: nodes,
            keyFile: keyFile,
            publicKeyFile: publicKeyFile,
            executable: executable,
            arguments: arguments,
            running: running,
            logger: logger
        )
        for (name, process) in running { group.supervise(name, process) }
        return group
    }

    public func run() async throws {
        try? await gracefulShutdown()
        self.stopping.withLockedValue { $0 = true }
        let processes = self.running.withLockedValue { Array($0.values) }
        for process in processes { process.signal(SIGTERM) }
        for process in processes { process.wait() }
    }

    /// Starts a node and reads its first line, `listening on HOST:PORT`.
    private static func launch(_ executable: String, _ arguments: [String]) throws -> (ChildProcess, ServiceEndpoint) {
        let output = Pipe()
        let process: ChildProcess
        do {
            defer { try? output.fileHandleForWriting.close() }
            process = try ChildProcess(
                executable,
                arguments,
                standardOutput: output.fileHandleForWriting.fileDescriptor
            )
        }
        var line = Data()
        while !line.contains(10) {
            let chunk = output.fileHandleForReading.availableData
            guard !chunk.isEmpty else { break }
            line.append(chunk)
        }
        let first = String(decoding: line.prefix { $0 != 10 }, as: UTF8.self)
        guard first.hasPrefix("listening on "), let endpoint = ServiceEndpoint(String(first.dropFirst(13))) else {
            process.signal(SIGTERM)
            throw NodeProcessError(
                "'ferry \(arguments.prefix(3).joined(separator: " "))' did not start (it said '\(first)')"
            )
        }
        // The node's further lines are not needed; keep its pipe drained so it never blocks.
        Thread.detachNewThread { while !output.fileHandleForReading.availableData.isEmpty {} }
        return (process, endpoint)
    }

    /// Restarts a node that exits while the cluster is up.
    private func supervise(_ name: String, _ process: ChildProcess) {
        Thread.detachNewThread { [weak self] in
            let ended = process.wait()
            guard let self, !self.stopping.withLockedValue({ $0 }) else { return }
            self.logger.warning(
                "node \(name) exited (status \(ended.code)); starting it again on its data directory"
            )
            Thread.sleep(forTimeInterval: 0.5)
            do {
                let (restarted, endpoint) = try Self.launch(self.executable, self.arguments[name] ?? [])
                self.running.withLockedValue { $0[name] = restarted }
                self.logger.info("node \(name) is back at \(endpoint)")
                self.supervise(name, restarted)
            } catch {
                self.logger.error("cannot start node \(name) again: \(error)")
            }
        }
    }

    /// Where `ferry up` keeps the cluster's secret key under its data directory.
    public static func clusterKeyFile(dataDirectory: String) -> String { dataDirectory + "/cluster/ferry.key" }

    /// The cluster's signing key, made on first use.
    private static func clusterKey(in directory: String) throws -> (String, String) {
        let secret = directory + "/ferry.key"
        let publicKey = directory + "/ferry.pub"
        if !FileManager.default.fileExists(atPath: secret) {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            let key = SigningKey()
            guard
                FileManager.default.createFile(
                    atPath: secret,
                    contents: Data(key.fileBytes),
                    attributes: [.posixPermissions: 0o600]
                ), FileManager.default.createFile(atPath: publicKey, contents: Data(key.trusted.fileBytes))
            else { throw NodeProcessError("cannot write the cluster key to \(directory)") }
        }
        return (secret, publicKey)
    }

    /// This program: nodes are the same `ferry` binary.
    private static func ferryExecutable() -> String {
        (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
    }
}

struct NodeProcessError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

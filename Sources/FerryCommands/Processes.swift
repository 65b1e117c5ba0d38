import ArgumentParser
import FerryContainer
import FerryEndpoints
import FerryGuest
import FerryMigration
import FerryWire
import Foundation

/// `ferry spawn`: start a process on a node of the cluster.
struct SpawnCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "spawn",
        abstract: "Start a process on a node; prints its name.",
        discussion: """
            The module goes to the node only when the node lacks it (modules are named by their \
            SHA-256). The node runs it only if it is signed by a key the node trusts ('ferry sign'), \
            unless the node was started with --allow-unsigned.
            """
    )

    @OptionGroup var cluster: DaemonOption

    @Option(help: "The node to start it on.")
    var node: String

    @Argument(help: "The module (.wasm); leave it out with --digest.")
    var module: String?

    @Option(
        help: "Run the module with this SHA-256, which the node fetches from a node that holds it (code on demand)."
    )
    var digest: String?

    @Option(help: "The process's name, unique in the cluster (default: the module's name and a random suffix).")
    var name: String?

    @Option(help: "The export to call; without it the module runs as a WASI command.")
    var invoke: String?

    @OptionGroup var process: ProcessOptions

    @Flag(help: "Keep it on its node: the balancer never moves it, nor does 'ferry migrate'.")
    var pin = false

    @OptionGroup(title: "A native program in a container instead of a module") var container: SpawnContainerOptions

    @Argument(parsing: .allUnrecognized, help: "Arguments for the export, or for the WASI command.")
    var arguments: [String] = []

    func validate() throws {
        if self.container.container {
            guard self.container.rootfs != nil else {
                throw ValidationError("--container needs --rootfs DIR (on the node)")
            }
            guard self.digest == nil, self.invoke == nil else {
                throw ValidationError("--container runs a program, not a module: leave out --digest and --invoke")
            }
            guard self.module != nil else { throw ValidationError("give the program to run after --") }
            let publish = try self.container.publish.map(ContainerFlags.publish)
            guard publish.isEmpty || self.container.net == .private else {
                throw ValidationError(
                    "--publish needs --net private (the container has no address of its own otherwise)"
                )
            }
            if self.container.service != nil && publish.isEmpty {
                throw ValidationError("--service names what a container publishes: give --publish HOST_PORT:PORT too")
            }
            return
        }
        guard self.module != nil || self.digest != nil else {
            throw ValidationError("give the module file, or --digest SHA256 of a module a node holds")
        }
        if let digest = self.digest, ModuleDigest(hex: digest) == nil {
            throw ValidationError("--digest takes the module's SHA-256 as 64 hex digits, got '\(digest)'")
        }
    }

    func run() async throws {
        if self.container.container {
            try await self.spawnContainer()
            return
        }
        // With --digest there is no module file: the first word is the first argument.
        let module = self.digest == nil ? self.module : nil
        var arguments = (self.digest == nil ? [] : self.module.map { [$0] } ?? []) + self.arguments
        if arguments.first == "--" { arguments.removeFirst() }
        let (bytes, digest) = try module.map(readModule) ?? ([], self.digest!)
        let name = self.name ?? defaultName(for: module ?? "process")
        var spec = try self.process.spec(name: name, digest: digest, export: self.invoke, arguments: arguments)
        spec.pinned = self.pin ? true : nil
        let client = try await self.cluster.lookup.connect(try await self.cluster.lookup.node(self.node))
        defer { Task { await client.close() } }
        var reply = try await request(client, .spawn(spec, code: nil))
        if case .needCode = reply {
            guard !bytes.isEmpty else {
                throw CommandFailure("no node holds module \(digest); give the module file instead of --digest")
            }
            reply = try await request(client, .spawn(spec, code: Data(bytes)))
        }
        guard case .spawned(let summary) = reply else { throw CommandFailure("the node answered \(reply)") }
        printLine(summary.name)
    }
}

extension SpawnCommand {
    /// `--container`: the program (the first word after `--`) runs in a container on the node.
    private func spawnContainer() async throws {
        var program = (self.module.map { [$0] } ?? []) + self.arguments
        if program.first == "--" { program.removeFirst() }
        let name = self.name ?? defaultName(for: URL(fileURLWithPath: program[0]).lastPathComponent)
        let options = self.container
        var container = ContainerRequest(
            name: name,
            rootfs: URL(fileURLWithPath: options.rootfs!).standardizedFileURL.path,
            layers: options.layer.map { URL(fileURLWithPath: $0).standardizedFileURL.path },
            arguments: program,
            environment: try options.env.map(ContainerFlags.environment),
            memory: try options.memory.map(ContainerFlags.memory),
            pids: options.pids,
            cpus: options.cpus,
            network: options.net,
            publish: try options.publish.map(ContainerFlags.publish),
            service: options.service
        )
        container.cpuShares = try options.cpuShares.map(ContainerFlags.cpuShares)
        let client = try await self.cluster.lookup.connect(try await self.cluster.lookup.node(self.node))
        defer { Task { await client.close() } }
        guard case .spawned(let summary) = try await request(client, .spawnContainer(container)) else {
            throw CommandFailure("the node did not start the container")
        }
        printLine(summary.name)
    }
}

/// `ferry spawn --container`'s options: the container's root and limits, as `ferry container run`
/// takes them.
struct SpawnContainerOptions: ParsableArguments {
    @Flag(help: "Run a native program (after --) in a container on the node, not a module.")
    var container = false

    @Option(help: ArgumentHelp("The container's root file system, on the node.", valueName: "DIR"))
    var rootfs: String?

    @Option(help: ArgumentHelp("A further read-only layer over the root.", valueName: "DIR"))
    var layer: [String] = []

    @Option(help: ArgumentHelp("The container's memory limit.", valueName: "SIZE"))
    var memory: String?

    @Option(help: "The container's most processes and threads.")
    var pids: Int?

    @Option(help: "The container's CPU quota, in CPUs.")
    var cpus: Double?

    @Option(help: "The container's CPU weight against competing processes, 2 to 262144 (a plain process has 1024).")
    var cpuShares: Int?

    @Option(help: ArgumentHelp("An environment variable for the program.", valueName: "K=V"))
    var env: [String] = []

    @Option(help: "none: loopback only; host: the node's network; private: a veth pair with an address.")
    var net: ContainerSpec.Network = .none

    @Option(
        help: ArgumentHelp(
            "Forward the node's port to the container's (--net private); the container is then registered at the endpoint daemon as a service.",
            valueName: "HOST_PORT:PORT"
        )
    )
    var publish: [String] = []

    @Option(help: "The name a container that publishes a port is registered under (default: the process's name).")
    var service: String?
}

/// The options of a process that `spawn` and `eval` share.
struct ProcessOptions: ParsableArguments {
    @Option(help: "Fuel budget (about one unit per instruction).")
    var fuel: UInt64?

    @Option(help: "Linear memory limit, e.g. 64MiB.", transform: parseSize)
    var maxMemory: Int?

    @Option(
        name: .customLong("dir"),
        help: ArgumentHelp(
            "A directory of the node, seen by the process at GUEST: its writes go to a layer of its own, which moves with it.",
            valueName: "HOST[:GUEST][:ro]"
        )
    )
    var directories: [String] = []

    @Option(
        name: .customLong("lower"),
        help: ArgumentHelp("A read-only layer under the --dir seen at GUEST.", valueName: "GUEST=HOST")
    )
    var lowers: [String] = []

    @Option(help: "Keep this many bytes at the address the call returns as its result, printed as hex.")
    var resultBytes: Int?

    func spec(name: String, digest: String, export: String?, arguments: [String]) throws -> ProcessSpec {
        for directory in self.directories { _ = try GuestDirectory(parsing: directory) }
        return ProcessSpec(
            name: name,
            digest: digest,
            export: export,
            arguments: arguments,
            fuel: self.fuel,
            maxMemoryBytes: self.maxMemory,
            directories: self.directories,
            lowers: self.lowers,
            resultBytes: self.resultBytes
        )
    }
}

/// `ferry ps`: every process of the cluster.
struct PsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ps",
        abstract: "List the processes of every node: name, node, module, state, epoch, memory, CPU time, moves."
    )

    @OptionGroup var cluster: DaemonOption

    @Flag(help: "One JSON array, for scripts.")
    var json = false

    @Option(help: ArgumentHelp("List this process's resources and how each is bound.", valueName: "P"))
    var resources: String?

    func run() async throws {
        let lookup = self.cluster.lookup
        if let name = self.resources {
            let client = try await lookup.connect(try await lookup.holder(of: name))
            defer { Task { await client.close() } }
            guard case .resources(let bindings) = try await request(client, .resources(name)) else { return }
            if self.json { return printLine(try jsonString(bindings)) }
            printTable(
                ["RESOURCE", "WHICH", "PROCESS-TO-RESOURCE", "RESOURCE-TO-MACHINE", "ON A MOVE"],
                bindings.map { [$0.kind, $0.identifier, $0.processBinding, $0.machineBinding, $0.onMove] }
            )
            return
        }
        var all: [ProcessSummary] = []
        for (name, endpoint) in try await lookup.nodes() {
            do {
                let client = try await NodeClient.connect(to: endpoint)
                defer { Task { await client.close() } }
                if case .processes(let list) = try await client.request(.list) { all += list }
            } catch {
                printError("node \(name) at \(endpoint) did not answer: \(error)")
            }
        }
        all.sort { ($0.node, $0.name) < ($1.node, $1.name) }
        if self.json { return printLine(try jsonString(all)) }
        printTable(
            ["NAME", "NODE", "MODULE", "STATE", "EPOCH", "MEMORY", "CPU", "MOVES"],
            all.map {
                [
                    $0.name, $0.node, String($0.digest.prefix(12)), $0.state, String($0.epoch),
                    GuestStop.size($0.memoryBytes), "\($0.cpuMilliseconds) ms",
                    $0.pinned == true ? "\($0.moves) (pinned)" : String($0.moves),
                ]
            }
        )
    }
}

/// `ferry wait`: wait for a process to end, wherever it runs, and print its result.
struct WaitCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "wait",
        abstract: "Wait for a process to end and print its result as 'ferry guest run' does.",
        discussion:
            "Exits 3 with the reason when the process failed, and with its code when a WASI command exited non-zero."
    )

    @OptionGroup var cluster: DaemonOption

    @Argument(help: "The process.")
    var name: String

    func run() async throws {
        let outcome = try await waitFor(self.name, lookup: self.cluster.lookup)
        try printOutcome(outcome)
    }
}

/// Waits for `name` to end, following it from node to node, and for its node to come back when
/// it is down (a node that restarts recovers its processes).
func waitFor(_ name: String, lookup: ClusterLookup) async throws -> ProcessOutcome {
    var warned = false
    while true {
        let holder = try await lookup.holder(of: name)
        let client: NodeClient
        do {
            client = try await NodeClient.connect(to: holder)
        } catch let error as NodeClient.Unreachable {
            if !warned { printError("\(error); waiting for it to come back, or for its claim to move") }
            warned = true
            try await Task.sleep(for: .seconds(1))
            continue
        }
        defer { Task { await client.close() } }
        do {
            for try await reply in client.stream(.wait(name)) {
                if case .finished(let outcome) = reply { return outcome }
                if case .moved = reply { break }
            }
        } catch let error as ErrorMessage where error.code == .invalidArgument {
            // The process left that node between the lookup and the wait: look again.
            _ = error
        }
        try await Task.sleep(for: .milliseconds(50))
    }
}

/// Prints a process's result, or says why it failed (exit 3), or exits with its exit code.
func printOutcome(_ outcome: ProcessOutcome) throws {
    if let failure = outcome.failure {
        printError("process failed: \(failure)")
        throw ExitCode(3)
    }
    if let code = outcome.exitCode {
        if code != 0 { throw ExitCode(Int32(bitPattern: code)) }
        return
    }
    if let hex = outcome.resultHex { return printLine(hex) }
    for value in outcome.values { printLine(value) }
}

/// `ferry kill`: stop a process.
struct KillCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "kill",
        abstract: "Stop a running process, or forget an ended one and free its name."
    )

    @OptionGroup var cluster: DaemonOption

    @Argument(help: "The process.")
    var name: String

    func run() async throws {
        let client = try await self.cluster.lookup.connect(try await self.cluster.lookup.holder(of: self.name))
        defer { Task { await client.close() } }
        _ = try await request(client, .kill(self.name))
    }
}

/// `ferry logs`: a process's output, from whichever node it is on.
struct LogsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "logs",
        abstract: "Print a process's standard output and error (and its ferry.log lines), from whichever node it is on."
    )

    @OptionGroup var cluster: DaemonOption

    @Argument(help: "The process.")
    var name: String

    @Flag(help: "Keep printing as it writes, until it ends (following it when it moves).")
    var follow = false

    func run() async throws {
        var offset = 0
        while true {
            let client = try await self.cluster.lookup.connect(try await self.cluster.lookup.holder(of: self.name))
            defer { Task { await client.close() } }
            var moved = false
            for try await reply in client.stream(.logs(self.name, offset: offset, follow: self.follow)) {
                switch reply {
                case .output(let bytes, let next, let ended):
                    FileHandle.standardOutput.write(bytes)
                    offset = next
                    if ended || !self.follow { return }
                case .moved:
                    moved = true
                default:
                    break
                }
            }
            guard moved, self.follow else { return }
            try await Task.sleep(for: .milliseconds(50))
        }
    }
}

/// `ferry migrate`: move a process to another node.
struct MigrateCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "migrate",
        abstract: "Move a process to another node.",
        discussion: """
            strong (default) moves its code, memory and execution state: it goes on at the next \
            instruction; stop-and-copy is the same move, named as live migration names it. weak \
            moves code and memory: it starts again at its ferry_arrive export (or the export it \
            was called with). Live migration: pre-copy sends its memory while it runs, then in \
            rounds what it wrote, until the rest fits --max-downtime, and stops it for that; \
            post-copy stops it, sends its state and resumes it at the target at once, its pages \
            following, pushed or fetched on demand; hybrid is one pre-copy pass, then post-copy. \
            With --pull the target asks the source for it (receiver-initiated).
            """
    )

    @OptionGroup var cluster: DaemonOption

    @Argument(help: "The process.")
    var name: String

    @Option(help: "The node to move it to.")
    var to: String

    @Option(help: "weak, strong, stop-and-copy, pre-copy, post-copy or hybrid.")
    var mode: MoveMode = .strong

    @Option(help: "Pre-copy: the downtime to aim for, in milliseconds.")
    var maxDowntime: Double = 5

    @Option(help: "Pre-copy: rounds after which the process stops anyway.")
    var maxRounds: Int = 30

    @Flag(
        inversion: .prefixedNo,
        help: "Pre-copy: slow down a process that writes faster than its pages go (auto-converge)."
    )
    var autoConverge = true

    @Flag(help: "Receiver-initiated: the target node asks for the process.")
    var pull = false

    @Flag(help: "Print the report as one JSON object.")
    var json = false

    func validate() throws {
        guard self.maxDowntime > 0, self.maxDowntime <= 60_000 else {
            throw ValidationError("--max-downtime \(self.maxDowntime) is not between 0 and 60000 milliseconds")
        }
        guard (1...1000).contains(self.maxRounds) else {
            throw ValidationError("--max-rounds \(self.maxRounds) is not between 1 and 1000")
        }
    }

    func run() async throws {
        let lookup = self.cluster.lookup
        let target = try await lookup.node(self.to)
        let client: NodeClient
        let stream: AsyncThrowingStream<NodeReply, any Error>
        if self.pull {
            client = try await lookup.connect(target)
            stream = client.stream(.pull(self.name, mode: self.mode))
        } else {
            client = try await lookup.connect(try await lookup.holder(of: self.name))
            stream = client.stream(
                .migrate(
                    self.name,
                    to: self.to,
                    mode: self.mode,
                    limits: MoveLimits(
                        maxDowntimeMilliseconds: self.maxDowntime,
                        maxRounds: self.maxRounds,
                        autoConverge: self.autoConverge
                    )
                )
            )
        }
        defer { Task { await client.close() } }
        let started = ContinuousClock.now
        let showProgress = isatty(1) == 1 && !self.json
        do {
            for try await reply in stream {
                switch reply {
                case .progress(let sent, let total):
                    if showProgress, ContinuousClock.now - started > .seconds(1) {
                        let percent = total > 0 ? sent * 100 / total : 100
                        FileHandle.standardError.write(
                            Data("\rmoving \(self.name): \(percent)% of \(GuestStop.size(total))".utf8)
                        )
                    }
                case .report(let report):
                    if showProgress, ContinuousClock.now - started > .seconds(1) {
                        FileHandle.standardError.write(Data("\n".utf8))
                    }
                    if self.json { return printLine(try jsonString(report)) }
                    printLine(
                        "moved \(report.process) from \(report.from) to \(report.to) (\(report.mode)): \(report.bytesSent) bytes, \(report.codeBytesSent) of them code, in \(format(report.totalMilliseconds)) ms, down \(format(report.downtimeMilliseconds)) ms"
                    )
                    return
                default:
                    break
                }
            }
        } catch let error as ErrorMessage {
            throw CommandFailure("cannot move \(self.name) to \(self.to): \(error.message)")
        }
    }

    private func format(_ milliseconds: Double) -> String { String(format: "%.1f", milliseconds) }
}

/// `ferry eval`: remote evaluation.
struct EvalCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "eval",
        abstract:
            "Remote evaluation: run an export of a module on a node, against its resources, and print the result here."
    )

    @OptionGroup var cluster: DaemonOption

    @Option(help: "The node to run it on.")
    var node: String

    @Argument(help: "The module (.wasm).")
    var module: String

    @Option(help: "The export to call.")
    var invoke: String

    @OptionGroup var process: ProcessOptions

    @Argument(parsing: .allUnrecognized, help: "Arguments for the export.")
    var arguments: [String] = []

    func run() async throws {
        let (bytes, digest) = try readModule(self.module)
        let spec = try self.process.spec(name: "eval", digest: digest, export: self.invoke, arguments: self.arguments)
        let client = try await self.cluster.lookup.connect(try await self.cluster.lookup.node(self.node))
        defer { Task { await client.close() } }
        var reply = try await request(client, .evaluate(spec, code: nil), timeout: .seconds(3600))
        if case .needCode = reply {
            reply = try await request(client, .evaluate(spec, code: Data(bytes)), timeout: .seconds(3600))
        }
        switch reply {
        case .finished(let outcome): try printOutcome(outcome)
        case .moved(let node): throw CommandFailure("the evaluation moved itself to \(node) and did not come back")
        default: throw CommandFailure("the node answered \(reply)")
        }
    }
}

/// A module file's bytes and SHA-256.
func readModule(_ path: String) throws -> ([UInt8], String) {
    guard let data = FileManager.default.contents(atPath: path) else {
        throw CommandFailure("cannot read \(path): no such file, or not readable")
    }
    let bytes = [UInt8](data)
    return (bytes, ModuleDigest(of: bytes).hex)
}

/// `sha256.wasm` → `sha256-1a2b3c`.
func defaultName(for path: String) -> String {
    let base = URL(fileURLWithPath: path).deletingPathExtension().lastPathComponent
        .filter { $0.isLetter || $0.isNumber || "-_.".contains($0) }
    return
        "\(base.prefix(40).isEmpty ? "process" : String(base.prefix(40)))-\(String(UInt32.random(in: 0...0xFFFFFF), radix: 16))"
}

/// One request to a node; an error answer becomes a one-line failure.
func request(_ client: NodeClient, _ request: NodeRequest, timeout: Duration = .seconds(60)) async throws -> NodeReply {
    do {
        return try await client.request(request, timeout: timeout)
    } catch let error as ErrorMessage {
        throw CommandFailure(error.message)
    }
}

func jsonString<Value: Encodable>(_ value: Value) throws -> String {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
    return String(decoding: try encoder.encode(value), as: UTF8.self)
}

#if canImport(Glibc)
import Glibc
#endif
extension MoveMode: ExpressibleByArgument {}
extension Balancer.Mode: ExpressibleByArgument {}

import ArgumentParser
import CFerryLinux
import FerryContainer
import FerryPosix
import Foundation
import NIOCore

/// `ferry container run|ps|logs|stop|rm`: native programs in namespaces, on overlayfs layers,
/// under cgroup limits, as crun and podman run them.
struct ContainerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "container",
        abstract: "Run native programs in containers: namespaces, an overlay root, cgroup limits; OCI bundles.",
        subcommands: [
            ContainerRun.self, ContainerPs.self, ContainerLogs.self, ContainerStop.self, ContainerRemove.self,
        ]
    )
}

struct ContainerStoreOption: ParsableArguments {
    @Option(
        name: .customLong("state"),
        help: ArgumentHelp(
            "Where containers are recorded (default /run/ferry/containers for root).",
            valueName: "DIR"
        )
    )
    var root: String?

    var store: ContainerStore { ContainerStore(root: self.root ?? ContainerStore.defaultRoot()) }
}

extension ContainerSpec.Network: ExpressibleByArgument {}

struct ContainerRun: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Run a program in a container; exits with the program's status.",
        discussion: """
            The program is PID 1 of its own PID namespace (--init puts a tiny init there instead, \
            which forwards signals and reaps orphans). Its root is an overlay: --rootfs and each \
            --layer are read-only lower layers, and its writes land in an upper layer of its own, \
            removed at exit unless --keep. Why it ended (exit status, signal, out of memory, pids \
            limit) is reported on standard error.
            """
    )

    @OptionGroup var state: ContainerStoreOption

    @Option(help: ArgumentHelp("The root file system, read-only (its lowest layer).", valueName: "DIR"))
    var rootfs: String?

    @Option(help: ArgumentHelp("An OCI runtime bundle (config.json and its root), as crun runs.", valueName: "DIR"))
    var bundle: String?

    @Option(help: ArgumentHelp("A further read-only layer over the root; repeat, the last on top.", valueName: "DIR"))
    var layer: [String] = []

    @Option(help: "The container's hostname (default: its id).")
    var hostname: String?

    @Option(help: ArgumentHelp("Memory limit; an overrun is killed as out of memory (OOM).", valueName: "SIZE"))
    var memory: String?

    @Option(help: "The most processes and threads at once.")
    var pids: Int?

    @Option(help: "CPU quota, in CPUs (0.5 is half of one).")
    var cpus: Double?

    @Option(help: "CPU weight against competing processes, 2 to 262144 (a plain process has 1024).")
    var cpuShares: Int?

    @Option(help: "none: loopback only; host: the host's network; private: a veth pair with an address.")
    var net: ContainerSpec.Network = .none

    @Option(
        help: ArgumentHelp("Forward the host's port to the container's (--net private).", valueName: "HOST_PORT:PORT")
    )
    var publish: [String] = []

    @Option(help: ArgumentHelp("An environment variable for the program.", valueName: "K=V"))
    var env: [String] = []

    @Option(help: ArgumentHelp("Bind the host's SRC at DST inside, read-only with :ro.", valueName: "SRC:DST[:ro]"))
    var mount: [String] = []

    @Option(help: ArgumentHelp("Run the program as this user and group.", valueName: "UID:GID"))
    var user: String?

    @Option(help: "The container's id (default: twelve random hex digits).")
    var name: String?

    @Flag(help: "Run in the background: print the id and return; see ferry container ps|logs|stop|rm.")
    var detach = false

    @Flag(help: "Keep the writable upper layer and the record when the container ends.")
    var keep = false

    @Flag(help: "Say nothing when the container ends (its status is still Ferry's exit status).")
    var quiet = false

    @Flag(name: .customLong("init"), help: "Run a tiny init as PID 1 that forwards signals and reaps orphans.")
    var runsInit = false

    /// Set by `--detach` on the process it starts to watch the container: it reports on its
    /// standard input (a pipe) whether the container started.
    @Flag(help: .hidden)
    var monitor = false

    @Argument(
        parsing: .postTerminator,
        help: ArgumentHelp("The program and its arguments, after --.", valueName: "PROGRAM")
    )
    var command: [String] = []

    func validate() throws {
        guard (self.rootfs == nil) != (self.bundle == nil) else {
            throw ValidationError("give exactly one of --rootfs DIR and --bundle DIR")
        }
        if self.bundle != nil && !self.layer.isEmpty {
            throw ValidationError("--layer goes with --rootfs; a bundle names its own root")
        }
        if self.rootfs != nil && self.command.isEmpty {
            throw ValidationError("give the program to run after --, like: ferry container run --rootfs DIR -- /bin/sh")
        }
        if let pids = self.pids, pids < 1 { throw ValidationError("--pids must be at least 1, got \(pids)") }
        if let name = self.name {
            guard !name.isEmpty, name.count <= 64,
                name.allSatisfy({ $0.isLetter || $0.isNumber || "-_.".contains($0) }),
                name.first != "."
            else {
                throw ValidationError("--name takes letters, digits, '-', '_' and '.', up to 64, got '\(name)'")
            }
        }
    }

    func run() async throws {
        let spec = try self.makeSpec()
        let id = self.name ?? Container.newID()
        if self.detach {
            try self.startMonitor(id: id)
            return
        }
        let report = self.monitor ? MonitorReport.takeStandardInput() : nil
        let container: Container
        var publishers: [PortPublisher] = []
        do {
            container = try await Container.start(
                spec,
                id: id,
                store: self.state.store,
                keep: self.keep || self.monitor
            )
        } catch {
            report?.send("\(error)")
            throw error
        }
        do {
            publishers = try await PortPublisher.publish(spec.publish, of: container)
        } catch {
            // A port taken already: the container must not run on unreachable.
            container.signal(SIGKILL)
            _ = await container.wait()
            report?.send("\(error)")
            throw error
        }
        for publisher in publishers { printError("ferry: container \(id) publishes \(publisher.forwarding)") }
        report?.send("ok")
        let forwarding = SignalForwarding(to: container)
        let exit = await container.wait()
        withExtendedLifetime(forwarding) {}
        for publisher in publishers { await publisher.close() }
        if !self.quiet { printError("ferry: container \(id) \(exit.reason)") }
        if exit.exitCode != 0 { throw ExitCode(exit.exitCode) }
    }

    func makeSpec() throws -> ContainerSpec {
        var spec: ContainerSpec
        if let bundle = self.bundle {
            spec = try OCIBundle.load(directory: bundle)
            if !self.command.isEmpty { spec.arguments = self.command }
        } else {
            let layers = ([self.rootfs!] + self.layer).map { URL(fileURLWithPath: $0).standardizedFileURL.path }
            spec = ContainerSpec(layers: layers, arguments: self.command)
            spec.hostname = self.name ?? "ferry"
        }
        if let hostname = self.hostname { spec.hostname = hostname }
        if let memory = self.memory { spec.resources.memory = try ContainerFlags.memory(memory) }
        if let pids = self.pids { spec.resources.pids = Int64(pids) }
        if let shares = self.cpuShares { spec.resources.cpuShares = try ContainerFlags.cpuShares(shares) }
        if let cpus = self.cpus { try spec.resources.limitCPUs(to: cpus) }
        if self.bundle == nil || self.net != .none { spec.use(self.net) }
        spec.publish = try self.publish.map(ContainerFlags.publish)
        spec.environment += try self.env.map(ContainerFlags.environment)
        spec.mounts += try self.mount.map(ContainerFlags.mount)
        if let user = self.user { spec.user = try ContainerFlags.user(user) }
        if self.runsInit { spec.runsInit = true }
        // Without root, the container's root is root only inside a user namespace of its own.
        if geteuid() != 0 { spec.namespaces.insert(.user) }
        return spec
    }

    /// Starts this command again, without --detach, as the container's monitor in a session of
    /// its own, its output going to the container's log; prints the id once it has started.
    private func startMonitor(id: String) throws {
        let store = self.state.store
        try FileManager.default.createDirectory(atPath: store.directory(of: id), withIntermediateDirectories: true)
        let log = store.logPath(of: id)
        _ = FileManager.default.createFile(atPath: log, contents: nil)
        guard let output = FileHandle(forWritingAtPath: log) else { throw ContainerError("cannot write \(log)") }
        var arguments = Array(CommandLine.arguments.dropFirst())
        let terminator = arguments.firstIndex(of: "--") ?? arguments.endIndex
        // The monitor runs the same flags, under the id chosen here.
        let naming = self.name == nil ? ["--name", id] : []
        arguments =
            arguments[..<terminator].filter { $0 != "--detach" } + naming + ["--monitor"] + arguments[terminator...]
        let ready = Pipe()
        let process = try ChildProcess(
            (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0],
            arguments,
            standardInput: ready.fileHandleForWriting.fileDescriptor,
            standardOutput: output.fileDescriptor,
            standardError: output.fileDescriptor
        )
        try? ready.fileHandleForWriting.close()
        try? output.close()
        let answer = String(decoding: ready.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        guard answer == "ok" else {
            process.wait()
            try? store.remove(id)
            let reason = answer.isEmpty ? (try? String(contentsOfFile: log, encoding: .utf8)) ?? "" : answer
            throw ContainerError(
                "the container did not start: \(reason.trimmingCharacters(in: .whitespacesAndNewlines))"
            )
        }
        print(id)
    }
}

/// The monitor's line back to `run --detach`: its standard input, moved aside so that the
/// container gets /dev/null there instead.
struct MonitorReport {
    let fd: Int32

    static func takeStandardInput() -> MonitorReport {
        setsid()
        let fd = fcntl(0, F_DUPFD_CLOEXEC, 3)
        let null = open("/dev/null", O_RDONLY)
        dup2(null, 0)
        close(null)
        return MonitorReport(fd: fd)
    }

    func send(_ text: String) {
        _ = text.withCString { Glibc.write(self.fd, $0, strlen($0)) }
        close(self.fd)
    }
}

/// SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1 and SIGUSR2 sent to `ferry container run` go to the
/// program instead (as crun and docker forward them).
final class SignalForwarding {
    private let sources: [any DispatchSourceSignal]

    init(to container: Container) {
        self.sources = [SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2].map { number in
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number)
            source.setEventHandler { container.signal(number) }
            source.resume()
            return source
        }
    }

    deinit {
        for source in self.sources { source.cancel() }
    }
}

struct ContainerPs: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ps",
        abstract: "List containers: id, status, pid, memory use and limit, pids limit, CPUs, address, command."
    )

    @OptionGroup var state: ContainerStoreOption

    @Flag(name: .shortAndLong, help: "Also those that have ended (kept with --keep or --detach).")
    var all = false

    @Flag(help: "One JSON array, for scripts.")
    var json = false

    func run() async throws {
        let containers = self.state.store.list().filter { self.all || $0.liveStatus == "running" }
        if self.json {
            let rows: [[String: Any]] = containers.map { state in
                var row: [String: Any] = [
                    "id": state.id, "status": state.liveStatus, "command": state.command, "rootfs": state.rootfs,
                ]
                row["pid"] = state.pid
                row["memoryLimit"] = state.memoryLimit
                row["memoryUsage"] = Self.memoryUsage(state)
                row["pidsLimit"] = state.pidsLimit
                row["cpus"] = state.cpus
                row["address"] = state.address
                row["exitCode"] = state.exitCode
                row["reason"] = state.reason
                return row
            }
            let data = try JSONSerialization.data(withJSONObject: rows, options: [.sortedKeys])
            print(String(decoding: data, as: UTF8.self))
            return
        }
        print(
            "ID            STATUS   PID      MEMORY               PIDS   CPUS   ADDRESS        COMMAND"
        )
        for state in containers {
            let usage = Self.memoryUsage(state).map(ByteCount.format) ?? "-"
            let memory = usage + " / " + (state.memoryLimit.map(ByteCount.format) ?? "-")
            let columns = [
                state.id.padding(toLength: 13, withPad: " ", startingAt: 0),
                state.liveStatus.padding(toLength: 8, withPad: " ", startingAt: 0),
                (state.pid.map(String.init) ?? "-").padding(toLength: 8, withPad: " ", startingAt: 0),
                memory.padding(toLength: 20, withPad: " ", startingAt: 0),
                (state.pidsLimit.map(String.init) ?? "-").padding(toLength: 6, withPad: " ", startingAt: 0),
                (state.cpus.map { String(format: "%.2f", $0) } ?? "-").padding(
                    toLength: 6,
                    withPad: " ",
                    startingAt: 0
                ),
                (state.address ?? "-").padding(toLength: 14, withPad: " ", startingAt: 0),
                state.command.joined(separator: " "),
            ]
            print(columns.joined(separator: " "))
        }
    }

    /// What the container's memory cgroup holds now (nothing once it has ended).
    static func memoryUsage(_ state: ContainerState) -> Int64? {
        guard state.liveStatus == "running" else { return nil }
        for path in state.cgroups {
            for file in ["/memory.usage_in_bytes", "/memory.current"] {
                if let text = try? String(contentsOfFile: path + file, encoding: .utf8),
                    let bytes = Int64(text.trimmingCharacters(in: .whitespacesAndNewlines))
                {
                    return bytes
                }
            }
        }
        return nil
    }
}

struct ContainerLogs: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "logs",
        abstract: "Print what a detached container wrote (its standard output and error)."
    )

    @OptionGroup var state: ContainerStoreOption

    @Flag(name: .shortAndLong, help: "Keep printing what it writes until it ends.")
    var follow = false

    @Argument(help: "The container's id (a unique prefix is enough).")
    var id: String

    func run() async throws {
        let store = self.state.store
        let container = try store.load(self.id)
        guard let handle = FileHandle(forReadingAtPath: store.logPath(of: container.id)) else {
            throw ContainerError("container \(container.id) has no log: only a detached container keeps one")
        }
        let monitor = self.follow ? ferry_pidfd_open(container.monitorPid) : -1
        defer { if monitor >= 0 { close(monitor) } }
        while true {
            let data = handle.availableData
            if !data.isEmpty {
                FileHandle.standardOutput.write(data)
                continue
            }
            guard monitor >= 0 else { return }
            // Wait a moment for more output, or for the monitor's end (then print the rest).
            var poller = pollfd(fd: monitor, events: Int16(POLLIN), revents: 0)
            if poll(&poller, 1, 200) > 0 {
                FileHandle.standardOutput.write(handle.readDataToEndOfFile())
                return
            }
        }
    }
}

struct ContainerStop: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "stop",
        abstract: "Stop containers: the signal first, SIGKILL after --time seconds."
    )

    @OptionGroup var state: ContainerStoreOption

    @Option(help: "Seconds to wait after the signal before SIGKILL.")
    var time: Double = 10

    @Option(help: "The signal to send first (a number).")
    var signal: Int32 = SIGTERM

    @Argument(help: "The containers' ids.")
    var ids: [String]

    func validate() throws {
        guard self.time >= 0 else { throw ValidationError("--time must not be negative, got \(self.time)") }
        guard !self.ids.isEmpty else { throw ValidationError("give the id of a container to stop") }
    }

    func run() async throws {
        for id in self.ids {
            let container = try self.state.store.load(id)
            Self.stop(container, signal: self.signal, grace: self.time)
            print(container.id)
        }
    }

    /// Signals the program, waits up to `grace` seconds for its monitor to record its end, then
    /// kills it. A program that is PID 1 without a handler for the signal ignores it: SIGKILL ends it.
    static func stop(_ container: ContainerState, signal: Int32, grace: Double) {
        guard container.liveStatus == "running", let pid = container.pid else { return }
        let monitor = ferry_pidfd_open(container.monitorPid)
        guard monitor >= 0 else { return }
        defer { close(monitor) }
        var poller = pollfd(fd: monitor, events: Int16(POLLIN), revents: 0)
        kill(pid, signal)
        if poll(&poller, 1, Int32(grace * 1000)) > 0 { return }
        kill(pid, SIGKILL)
        _ = poll(&poller, 1, 10_000)
    }
}

struct ContainerRemove: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rm",
        abstract: "Remove ended containers: their record, log and upper layer."
    )

    @OptionGroup var state: ContainerStoreOption

    @Flag(name: .shortAndLong, help: "Kill a running container first.")
    var force = false

    @Argument(help: "The containers' ids.")
    var ids: [String]

    func run() async throws {
        let store = self.state.store
        for id in self.ids {
            let container = try store.load(id)
            if container.liveStatus == "running" {
                guard self.force else {
                    throw ContainerError("container \(container.id) is running: stop it first, or rm --force")
                }
                ContainerStop.stop(container, signal: SIGKILL, grace: 0)
            }
            // A monitor killed with kill -9 could not remove the cgroups (its container died with it).
            if container.liveStatus != "running" { for path in container.cgroups { rmdir(path) } }
            try store.remove(container.id)
            print(container.id)
        }
    }
}

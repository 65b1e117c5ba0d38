import CFerryLinux
import FerryPosix
import Foundation
import NIOConcurrencyHelpers
import NIOCore

/// One running container: its program started in its namespaces, on its overlay root, in its
/// cgroups; ``wait()`` gives how it ended, after everything it held on the host (cgroups, veth,
/// subnet, upper layer unless kept) is gone.
///
/// A kernel thread of its own clones the child and waits for it: the child's parent-death signal
/// belongs to the thread that cloned it, so that thread lives as long as the container does.
public final class Container: Sendable {
    public let id: String
    public let spec: ContainerSpec
    /// The program's pid as the host sees it.
    public let pid: pid_t
    public let network: ContainerNetwork?
    public let cgroup: ContainerCgroup?
    let store: ContainerStore
    private let ended: NIOLockedValueBox<Ended>

    private struct Ended {
        var exit: ContainerExit?
        var waiters: [CheckedContinuation<ContainerExit, Never>] = []
    }

    private init(
        id: String,
        spec: ContainerSpec,
        pid: pid_t,
        network: ContainerNetwork?,
        cgroup: ContainerCgroup?,
        store: ContainerStore
    ) {
        self.id = id
        self.spec = spec
        self.pid = pid
        self.network = network
        self.cgroup = cgroup
        self.store = store
        self.ended = NIOLockedValueBox(Ended())
    }

    /// Starts `spec` as container `id` in `store` (its directory holds the upper layer and
    /// `state.json`). Returns once the program has been exec'd, or throws why it could not be.
    /// The program's standard input, output and error are this process's.
    ///
    /// - Parameters:
    ///   - keep: keep the upper layer (and the record) when the container ends.
    ///   - output: a file the program's standard output and error are appended to (its input
    ///     is then /dev/null); nil gives it this process's three.
    public static func start(
        _ spec: ContainerSpec,
        id: String = Container.newID(),
        store: ContainerStore,
        keep: Bool = false,
        output: String? = nil,
        upper: [UInt8]? = nil
    ) async throws -> Container {
        try ContainerValidation.check(spec)
        let directory = try store.create(id: id)
        if let upper {
            do {
                try UpperLayer.unpack(upper, into: directory + "/upper")
            } catch {
                try? FileManager.default.removeItem(atPath: directory)
                throw error
            }
        }
        let launch = LaunchPlan(spec: spec, id: id, directory: directory, store: store, keep: keep, output: output)
        return try await withCheckedThrowingContinuation { continuation in
            do {
                try KernelThread.detach(name: "container") {
                    launch.run(started: { continuation.resume(with: $0) })
                }
            } catch {
                launch.discard()
                continuation.resume(throwing: error)
            }
        }
    }

    /// Twelve hex digits, as short docker and podman ids are.
    public static func newID() -> String {
        (0..<6).map { _ in String(format: "%02x", UInt8.random(in: 0...255)) }.joined()
    }

    /// How the container ended (waits for it).
    public func wait() async -> ContainerExit {
        await withCheckedContinuation { continuation in
            let exit = self.ended.withLockedValue { ended -> ContainerExit? in
                if let exit = ended.exit { return exit }
                ended.waiters.append(continuation)
                return nil
            }
            if let exit { continuation.resume(returning: exit) }
        }
    }

    /// The writable layer as a tar archive (whiteouts and overlayfs' xattrs kept), to move the
    /// container by value; freeze it first so that it holds still.
    public func packUpperLayer() throws -> [UInt8] {
        try UpperLayer.pack(self.store.directory(of: self.id) + "/upper")
    }

    /// Sends `signal` to the program (PID 1 inside: without a handler for it, only SIGKILL ends it).
    public func signal(_ signal: Int32) {
        kill(self.pid, signal)
    }

    fileprivate func finish(_ exit: ContainerExit) {
        let waiters = self.ended.withLockedValue { ended in
            ended.exit = exit
            defer { ended.waiters = [] }
            return ended.waiters
        }
        for waiter in waiters { waiter.resume(returning: exit) }
    }

    /// What the container's thread does, from its directory to its end.
    private struct LaunchPlan: Sendable {
        let spec: ContainerSpec
        let id: String
        let directory: String
        let store: ContainerStore
        let keep: Bool
        let output: String?

        func run(started: (Result<Container, any Error>) -> Void) {
            var cgroup: ContainerCgroup?
            var network: ContainerNetwork?
            let container: Container
            do {
                cgroup = try self.makeCgroup()
                if self.spec.network == .private { network = try ContainerNetwork.lease() }
                let pid = try self.launch(cgroup: cgroup, network: network)
                container = Container(
                    id: self.id,
                    spec: self.spec,
                    pid: pid,
                    network: network,
                    cgroup: cgroup,
                    store: self.store
                )
                try? self.store.save(self.state(container: container))
            } catch {
                cgroup?.remove()
                network?.release()
                self.discard()
                started(.failure(error))
                return
            }
            started(.success(container))
            var status: Int32 = 0
            while waitpid(container.pid, &status, 0) < 0 && errno == EINTR {}
            let exit = ContainerExit(
                waitStatus: status,
                oomKills: cgroup?.oomKills ?? 0,
                pidsLimitHits: cgroup?.pidsLimitHits ?? 0,
                resources: self.spec.resources
            )
            cgroup?.remove()
            network?.release()
            if self.keep {
                var state = self.state(container: container)
                state.status = .exited
                state.exitCode = exit.exitCode
                state.reason = exit.reason
                try? self.store.save(state)
                try? FileManager.default.removeItem(atPath: self.directory + "/work")
            } else {
                self.discard()
            }
            container.finish(exit)
        }

        /// Removes the container's directory (its upper layer with it).
        func discard() {
            try? FileManager.default.removeItem(atPath: self.directory)
        }

        func state(container: Container) -> ContainerState {
            let resources = self.spec.resources
            return ContainerState(
                id: self.id,
                status: .running,
                command: self.spec.arguments,
                rootfs: self.spec.layers.first ?? "",
                created: Date(),
                pid: container.pid,
                monitorPid: getpid(),
                memoryLimit: resources.memory,
                pidsLimit: resources.pids,
                cpus: resources.cpuQuota.flatMap { quota in
                    quota < 0 ? nil : Double(quota) / Double(resources.cpuPeriod ?? 100_000)
                },
                cgroups: container.cgroup.map { Array($0.paths.values).sorted() } ?? [],
                published: [],
                address: container.network?.containerAddress
            )
        }

        /// The container's cgroups; without limits asked for, a user who cannot write cgroups
        /// (rootless) goes on without them.
        private func makeCgroup() throws -> ContainerCgroup? {
            do {
                return try ContainerCgroup.create(name: "\(self.id).\(getpid())", resources: self.spec.resources)
            } catch {
                if self.spec.resources.isEmpty && geteuid() != 0 { return nil }
                throw error
            }
        }

        /// Clones the child, does the parent's part (ids, cgroups, network), lets the child go and
        /// waits for its exec. Returns the child's pid.
        private func launch(cgroup: ContainerCgroup?, network: ContainerNetwork?) throws -> pid_t {
            // 0755 whatever the umask: the upper layer's top is the container's / as its users see it.
            for sub in ["upper", "work", "root"] {
                let path = self.directory + "/" + sub
                try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
                chmod(path, 0o755)
            }
            let arena = CArena()
            defer { withExtendedLifetime(arena) {} }
            var launch = try LaunchStruct.make(
                spec: self.spec,
                directory: self.directory,
                network: network,
                arena: arena
            )
            if let output = self.output {
                let log = open(output, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o640)
                let null = open("/dev/null", O_RDONLY | O_CLOEXEC)
                guard log >= 0, null >= 0 else {
                    throw ContainerError(
                        "cannot open \(output) for the container's output: \(String(cString: strerror(errno)))"
                    )
                }
                launch.stdin_fd = null
                launch.stdout_fd = log
                launch.stderr_fd = log
            }
            defer {
                if launch.stdin_fd >= 0 { close(launch.stdin_fd) }
                if launch.stdout_fd >= 0 { close(launch.stdout_fd) }
            }
            var goFD: Int32 = -1
            var reportFD: Int32 = -1
            let pid = ferry_container_clone(&launch, &goFD, &reportFD)
            guard pid > 0 else {
                throw ContainerError("cannot create the container's namespaces: \(String(cString: strerror(errno)))")
            }
            defer { close(reportFD) }
            do {
                try self.prepareFromOutside(pid: pid, cgroup: cgroup, network: network)
            } catch {
                close(goFD)
                kill(pid, SIGKILL)
                var status: Int32 = 0
                waitpid(pid, &status, 0)
                throw error
            }
            var go: UInt8 = 1
            _ = Foundation.write(goFD, &go, 1)
            close(goFD)
            var failure = ferry_container_failure()
            let count = withUnsafeMutableBytes(of: &failure) { buffer in
                read(reportFD, buffer.baseAddress, buffer.count)
            }
            guard count > 0 else { return pid }
            var status: Int32 = 0
            waitpid(pid, &status, 0)
            let step = withUnsafeBytes(of: failure.step) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            throw ContainerError("cannot start the container: \(step): \(String(cString: strerror(failure.error)))")
        }

        private func prepareFromOutside(pid: pid_t, cgroup: ContainerCgroup?, network: ContainerNetwork?) throws {
            if self.spec.namespaces.contains(.user) {
                let uids =
                    self.spec.uidMappings.isEmpty
                    ? [ContainerSpec.IDMapping(containerID: 0, hostID: getuid(), size: 1)] : self.spec.uidMappings
                let gids =
                    self.spec.gidMappings.isEmpty
                    ? [ContainerSpec.IDMapping(containerID: 0, hostID: getgid(), size: 1)] : self.spec.gidMappings
                // An unprivileged user may map only its own ids, and only with setgroups denied.
                if geteuid() != 0 { try ContainerCgroup.write("deny", to: "/proc/\(pid)/setgroups") }
                try ContainerCgroup.write(Self.mapText(uids), to: "/proc/\(pid)/uid_map")
                try ContainerCgroup.write(Self.mapText(gids), to: "/proc/\(pid)/gid_map")
            }
            try cgroup?.add(pid: pid)
            try network?.attach(to: pid)
        }

        private static func mapText(_ mappings: [ContainerSpec.IDMapping]) -> String {
            mappings.map { "\($0.containerID) \($0.hostID) \($0.size)\n" }.joined()
        }
    }
}

/// How a container ended, and why, as `ferry container run` reports it on standard error.
public struct ContainerExit: Sendable, Equatable {
    /// The program's exit status, or 128 + the signal that killed it (the shell's convention).
    public let exitCode: Int32
    public let signal: Int32?
    /// Processes the kernel's OOM killer killed at the memory limit.
    public let oomKills: Int
    /// Forks refused at the pids limit.
    public let pidsLimitHits: Int
    public let reason: String

    public init(waitStatus: Int32, oomKills: Int, pidsLimitHits: Int, resources: ContainerSpec.Resources) {
        let signalled = (waitStatus & 0x7f) != 0 && (waitStatus & 0x7f) != 0x7f
        let signal = waitStatus & 0x7f
        self.signal = signalled ? signal : nil
        self.exitCode = signalled ? 128 + signal : (waitStatus >> 8) & 0xff
        self.oomKills = oomKills
        self.pidsLimitHits = pidsLimitHits
        var parts = [signalled ? "killed by \(Self.name(of: signal))" : "exited with status \(self.exitCode)"]
        if oomKills > 0 {
            let limit = resources.memory.map { " at its memory limit of \(ByteCount.format($0))" } ?? ""
            parts.append(
                "out of memory (OOM): the kernel killed \(oomKills) process\(oomKills == 1 ? "" : "es")\(limit)"
            )
        }
        if pidsLimitHits > 0 {
            let limit = resources.pids.map { " (\($0) tasks)" } ?? ""
            parts.append("pids limit reached\(limit): \(pidsLimitHits) fork\(pidsLimitHits == 1 ? "" : "s") refused")
        }
        self.reason = parts.joined(separator: "; ")
    }

    static func name(of signal: Int32) -> String {
        let names: [Int32: String] = [
            SIGHUP: "SIGHUP", SIGINT: "SIGINT", SIGQUIT: "SIGQUIT", SIGILL: "SIGILL", SIGABRT: "SIGABRT",
            SIGFPE: "SIGFPE", SIGKILL: "SIGKILL", SIGSEGV: "SIGSEGV", SIGPIPE: "SIGPIPE", SIGALRM: "SIGALRM",
            SIGTERM: "SIGTERM", SIGUSR1: "SIGUSR1", SIGUSR2: "SIGUSR2", SIGBUS: "SIGBUS", SIGSYS: "SIGSYS",
        ]
        return names[signal] ?? "signal \(signal)"
    }
}

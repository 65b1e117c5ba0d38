import FerryContainer
import FerryEndpoints
import Foundation
import NIOConcurrencyHelpers

/// The containers a node runs as processes of the cluster: each claimed at the endpoint daemon
/// as `process:NAME` (so `ferry kill|wait|logs NAME` find it), its output in a log of the node's,
/// listed beside the node's guests. Execution state does not move between nodes (no CRIU here).
public final class NodeContainers: Sendable {
    private struct Entry {
        let request: ContainerRequest
        var container: Container?
        var exit: ContainerExit?
        var waiters: [CheckedContinuation<ContainerExit, Never>] = []
    }

    private let node: String
    private let allowed: Bool
    private let claims: ExclusiveClaims
    private let store: ContainerStore
    private let logs: String
    private let entries = NIOLockedValueBox<[String: Entry]>([:])

    init(node: String, allowed: Bool, claims: ExclusiveClaims, directory: String) throws {
        self.node = node
        self.allowed = allowed
        self.claims = claims
        self.store = ContainerStore(root: directory + "/state")
        self.logs = directory + "/logs"
        try FileManager.default.createDirectory(atPath: self.logs, withIntermediateDirectories: true)
    }

    public func holds(_ name: String) -> Bool {
        self.entries.withLockedValue { $0[name] != nil }
    }

    /// Claims the name and starts the container; the name is given up again if it cannot start.
    public func spawn(_ request: ContainerRequest) async throws -> ProcessSummary {
        try await self.start(request, upper: nil, takeover: nil)
    }

    /// A container arriving from another node: started on the writable layer it had there,
    /// taking its claim over from the lease the source held.
    public func adopt(_ request: ContainerRequest, upper: [UInt8], sourceLease: UInt64) async throws -> ProcessSummary {
        try await self.start(request, upper: upper, takeover: sourceLease)
    }

    /// Weak mobility: freezes the container (its files hold still), packs its writable layer,
    /// has `target` start it again from that layer and take its claim, then ends it here. What
    /// its processes held in memory does not move (this kernel has no CRIU).
    public func move(_ name: String, to target: String) async throws -> MoveReport {
        let began = ContinuousClock.now
        let claim = ProcessHost.claimName(name)
        guard let entry = self.entries.withLockedValue({ $0[name] }), let container = entry.container,
            entry.exit == nil
        else { throw ProcessError("'\(name)' has ended: there is nothing to move") }
        guard target != self.node else { throw ProcessError("'\(name)' is on \(target) already") }
        guard let lease = self.claims.lease(of: claim) else {
            throw ProcessError("this node no longer holds '\(name)'")
        }
        guard let endpoint = try await self.claims.client().lookup("node:\(target)").first?.endpoints.first else {
            throw ProcessError("no node named '\(target)' is registered")
        }
        try container.cgroup?.freeze()
        let frozen = ContinuousClock.now
        let upper: [UInt8]
        let reply: NodeReply
        do {
            upper = try container.packUpperLayer()
            let client = try await NodeClient.connect(to: endpoint)
            defer { Task { await client.close() } }
            var moving = entry.request
            moving.moves += 1
            reply = try await client.request(.adoptContainer(moving, upper: Data(upper), sourceLease: lease.leaseID))
        } catch {
            try? container.cgroup?.thaw()
            throw ProcessError("cannot move '\(name)' to \(target): \(error)")
        }
        guard case .spawned = reply else {
            try? container.cgroup?.thaw()
            throw ProcessError("cannot move '\(name)' to \(target): it answered \(reply)")
        }
        // The target holds the claim now: stop renewing it here and end this copy.
        self.claims.forget(claim)
        self.entries.withLockedValue { _ = $0.removeValue(forKey: name) }
        container.signal(SIGKILL)
        try? container.cgroup?.thaw()
        _ = await container.wait()
        try? FileManager.default.removeItem(atPath: self.logs + "/" + name)
        let done = ContinuousClock.now
        return MoveReport(
            process: name,
            mode: "weak",
            from: self.node,
            to: target,
            bytesSent: upper.count,
            codeBytesSent: 0,
            memoryBytes: 0,
            totalMilliseconds: (done - began).reportedMilliseconds,
            downtimeMilliseconds: (done - frozen).reportedMilliseconds,
            epoch: UInt64(entry.request.moves + 2),
            initiative: "sender",
            phases: [:],
            rounds: 1,
            pagesSent: 0,
            converged: true,
            throttled: 0,
            pagesOnDemand: 0,
            tracking: nil
        )
    }

    private func start(_ request: ContainerRequest, upper: [UInt8]?, takeover: UInt64?) async throws -> ProcessSummary {
        guard self.allowed else {
            throw ProcessError("node \(self.node) runs no containers: start it with --allow-containers (as root)")
        }
        try ProcessSpec.validate(name: request.name)
        var spec = ContainerSpec(
            layers: [request.rootfs] + request.layers,
            arguments: request.arguments,
            hostname: request.name,
            environment: ContainerSpec.defaultEnvironment + request.environment
        )
        spec.resources.memory = request.memory
        spec.resources.pids = request.pids.map(Int64.init)
        if let cpus = request.cpus {
            spec.resources.cpuQuota = try ContainerFlags.cpuQuota(cpus)
            spec.resources.cpuPeriod = 100_000
        }
        let placed = self.entries.withLockedValue { entries in
            guard entries[request.name] == nil else { return false }
            entries[request.name] = Entry(request: request)
            return true
        }
        guard placed else { throw ProcessError("a process named '\(request.name)' runs here already") }
        let claim = ProcessHost.claimName(request.name)
        do {
            try await self.claims.claim(
                claim,
                metadata: ["node": self.node, "epoch": String(request.moves + 1), "digest": "container"],
                takeover: takeover
            )
            let container = try await Container.start(
                spec,
                id: request.name,
                store: self.store,
                output: self.logs + "/" + request.name,
                upper: upper
            )
            self.entries.withLockedValue { $0[request.name]?.container = container }
            Task {
                let exit = await container.wait()
                let waiters = self.entries.withLockedValue { entries in
                    entries[request.name]?.exit = exit
                    defer { entries[request.name]?.waiters = [] }
                    return entries[request.name]?.waiters ?? []
                }
                for waiter in waiters { waiter.resume(returning: exit) }
            }
            return self.summary(request.name)!
        } catch {
            self.entries.withLockedValue { _ = $0.removeValue(forKey: request.name) }
            if takeover == nil { await self.claims.release(claim) } else { self.claims.forget(claim) }
            throw ProcessError("cannot start container '\(request.name)': \(error)")
        }
    }

    /// The node's containers as `ferry ps` lists processes.
    func list() -> [ProcessSummary] {
        self.entries.withLockedValue { Array($0.keys) }.compactMap(self.summary)
    }

    private func summary(_ name: String) -> ProcessSummary? {
        guard let entry = self.entries.withLockedValue({ $0[name] }) else { return nil }
        let request = entry.request
        var limits: [String] = []
        if let memory = request.memory { limits.append("memory \(ByteCount.format(memory))") }
        if let pids = request.pids { limits.append("pids \(pids)") }
        if let cpus = request.cpus { limits.append("cpus \(cpus)") }
        limits.append("root \(request.rootfs)")
        let state = entry.exit.map { $0.exitCode == 0 ? "exited" : "failed" } ?? "running"
        return ProcessSummary(
            name: name,
            node: self.node,
            digest: "container",
            state: state,
            epoch: UInt64(request.moves + 1),
            memoryBytes: Int(entry.container?.cgroup?.memoryUsage ?? 0),
            cpuMilliseconds: 0,
            moves: request.moves,
            pinned: nil,
            detail: entry.exit?.reason ?? limits.joined(separator: ", ")
        )
    }

    /// Waits for the container to end: its exit status as a WASI command's, or why it failed.
    func wait(_ name: String) async throws -> NodeReply {
        let exit = await withCheckedContinuation { (continuation: CheckedContinuation<ContainerExit, Never>) in
            let ended = self.entries.withLockedValue { entries -> ContainerExit? in
                if let exit = entries[name]?.exit { return exit }
                entries[name]?.waiters.append(continuation)
                return nil
            }
            if let ended { continuation.resume(returning: ended) }
        }
        if exit.signal == nil {
            return .finished(
                ProcessOutcome(exitCode: UInt32(exit.exitCode), failure: exit.exitCode == 0 ? nil : exit.reason)
            )
        }
        return .finished(ProcessOutcome(failure: exit.reason))
    }

    func output(_ name: String, from offset: Int) throws -> NodeReply {
        let path = self.logs + "/" + name
        let handle = try FileHandle(forReadingFrom: URL(fileURLWithPath: path))
        defer { try? handle.close() }
        try handle.seek(toOffset: UInt64(offset))
        let bytes = handle.readDataToEndOfFile()
        let ended = self.entries.withLockedValue { $0[name]?.exit != nil }
        return .output(bytes, next: offset + bytes.count, ended: ended)
    }

    /// Kills a running container (its whole PID namespace goes with its PID 1), or forgets an
    /// ended one and gives its name up.
    func kill(_ name: String) async throws {
        guard let entry = self.entries.withLockedValue({ $0[name] }) else { return }
        if entry.exit == nil, let container = entry.container {
            container.signal(SIGKILL)
            _ = await container.wait()
            return
        }
        self.entries.withLockedValue { _ = $0.removeValue(forKey: name) }
        try? FileManager.default.removeItem(atPath: self.logs + "/" + name)
        await self.claims.release(ProcessHost.claimName(name))
    }
}

import FerryContainer
import FerryEndpoints
import Foundation
import Logging
import NIOConcurrencyHelpers

/// The containers a node runs as processes of the cluster: each claimed at the endpoint daemon
/// as `process:NAME` (so `ferry kill|wait|logs NAME` find it), its output in a log of the node's,
/// listed beside the node's guests. Execution state does not move between nodes (no CRIU here).
///
/// A container that publishes a port is a service of the cluster: registered at the endpoint
/// daemon under its service name, at this node's host and the published port, for as long as it
/// runs here, so that a switch discovering that name balances over it.
public final class NodeContainers: Sendable {
    private struct Entry {
        let request: ContainerRequest
        var container: Container?
        var exit: ContainerExit?
        var waiters: [CheckedContinuation<ContainerExit, Never>] = []
        var publishers: [PortPublisher] = []
        /// Keeps the service registered; cancelling it deregisters.
        var registration: Task<Void, Never>?
        /// Being moved: its claim may pass to the target at any moment.
        var moving = false
    }

    private let node: String
    private let allowed: Bool
    private let claims: ExclusiveClaims
    private let store: ContainerStore
    private let logs: String
    private let logger = Logger(label: "ferry.node.containers")
    private let entries = NIOLockedValueBox<[String: Entry]>([:])

    init(node: String, allowed: Bool, claims: ExclusiveClaims, directory: String) throws {
        self.node = node
        self.allowed = allowed
        self.claims = claims
        self.store = ContainerStore(root: directory + "/state")
        self.logs = directory + "/logs"
        try FileManager.default.createDirectory(atPath: self.logs, withIntermediateDirectories: true)
        // What a node killed before this one left running (frozen in a move) ends now.
        if allowed && geteuid() == 0 { ContainerCgroup.removeStaleContainers() }
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
        let marked = self.entries.withLockedValue { entries in
            guard entries[name]?.moving == false else { return false }
            entries[name]?.moving = true
            return true
        }
        guard marked else { throw ProcessError("'\(name)' is moving already") }
        do {
            try container.cgroup?.freeze()
        } catch {
            self.entries.withLockedValue { $0[name]?.moving = false }
            throw error
        }
        let frozen = ContinuousClock.now
        // The target publishes and registers it anew (on the same port, if one was named).
        await self.unpublish(name)
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
            await self.resume(name, container, lease: lease)
            throw ProcessError("cannot move '\(name)' to \(target): \(error)")
        }
        guard case .spawned = reply else {
            await self.resume(name, container, lease: lease)
            throw ProcessError("cannot move '\(name)' to \(target): it answered \(reply)")
        }
        HandoverPhase.reached(.sourceRelease, on: .source)
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
        spec.use(request.network)
        spec.publish = request.publish
        spec.resources.memory = request.memory
        spec.resources.pids = request.pids.map(Int64.init)
        spec.resources.cpuShares = request.cpuShares
        if let cpus = request.cpus { try spec.resources.limitCPUs(to: cpus) }
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
                metadata: self.claimMetadata(request),
                takeover: takeover
            )
            if takeover != nil { HandoverPhase.reached(.commit, on: .target) }
            let container = try await Container.start(
                spec,
                id: request.name,
                store: self.store,
                output: self.logs + "/" + request.name,
                upper: upper
            )
            self.entries.withLockedValue { $0[request.name]?.container = container }
            do {
                try await self.publish(request.name, container)
            } catch {
                container.signal(SIGKILL)
                _ = await container.wait()
                throw error
            }
            Task {
                let exit = await container.wait()
                await self.unpublish(request.name)
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
            // Given up, not left to run out: a source whose move failed claims it again at once.
            await self.claims.release(claim)
            throw ProcessError("cannot start container '\(request.name)': \(error)")
        }
    }

    /// Publishes the container's ports and registers them as its service.
    private func publish(_ name: String, _ container: Container) async throws {
        guard let request = self.entries.withLockedValue({ $0[name]?.request }) else { return }
        let publishers = try await PortPublisher.publish(request.publish, of: container)
        guard !publishers.isEmpty else { return }
        let registration = LeasedRegistration(
            name: request.serviceName,
            endpoints: publishers.map { ServiceEndpoint(host: self.claims.holder.host, port: $0.hostPort) },
            metadata: ["node": self.node, "process": name],
            ttl: self.claims.ttl,
            registry: self.claims.registry,
            logger: self.logger
        )
        let keeping = Task { _ = try? await registration.run() }
        for publisher in publishers {
            self.logger.info(
                "container '\(name)' publishes \(publisher.forwarding) as service '\(request.serviceName)'"
            )
        }
        self.entries.withLockedValue {
            $0[name]?.publishers = publishers
            $0[name]?.registration = keeping
        }
    }

    /// Deregisters the container's service and closes its published ports.
    private func unpublish(_ name: String) async {
        let (publishers, registration) = self.entries.withLockedValue { entries in
            defer {
                entries[name]?.publishers = []
                entries[name]?.registration = nil
            }
            return (entries[name]?.publishers ?? [], entries[name]?.registration)
        }
        registration?.cancel()
        await registration?.value
        for publisher in publishers { await publisher.close() }
    }

    /// A move that failed: the container runs on here, published again, if this node still holds
    /// its claim or can claim it again (the target gave it up, or its lease ran out: a target
    /// that died after taking the claim over holds it for one ttl). If another node holds it, the
    /// container ends here, so that it never runs twice.
    private func resume(_ name: String, _ container: Container, lease: EndpointLease) async {
        guard let request = self.entries.withLockedValue({ $0[name]?.request }) else { return }
        let claim = ProcessHost.claimName(name)
        let deadline = ContinuousClock.now + self.claims.ttl * 2
        var held = false
        while !held && ContinuousClock.now < deadline {
            if let holder = try? await self.claims.holder(of: claim) {
                held = holder.leaseID == lease.leaseID
            } else {
                held =
                    (try? await self.claims.claim(
                        claim,
                        metadata: self.claimMetadata(request)
                    )) != nil
            }
            if !held { try? await Task.sleep(for: .milliseconds(250)) }
        }
        self.entries.withLockedValue { $0[name]?.moving = false }
        guard held else {
            self.logger.error(
                "container '\(name)' is claimed by another node after a failed move; stopping it here so that it never runs twice"
            )
            container.signal(SIGKILL)
            try? container.cgroup?.thaw()
            return
        }
        try? container.cgroup?.thaw()
        do {
            try await self.publish(name, container)
        } catch {
            self.logger.error("container '\(name)' stayed here after a failed move, but \(error)")
        }
    }

    /// This node lost the container's claim (the daemon gave it to another holder, or it could not
    /// be renewed in time): the container ends here, so that it never runs twice. During a move
    /// the claim passing to the target is expected.
    func claimLost(_ name: String) {
        guard let entry = self.entries.withLockedValue({ $0[name] }), !entry.moving, entry.exit == nil,
            let container = entry.container
        else { return }
        self.logger.error("container '\(name)' lost its claim; stopping it here so that it never runs twice")
        container.signal(SIGKILL)
    }

    /// Kills every running container and waits for each to be cleaned up (mounts, cgroups, veth,
    /// published ports, service registration), as a node stopping stops its guests.
    func stopAll() async {
        let running = self.entries.withLockedValue { $0.values.compactMap { $0.exit == nil ? $0.container : nil } }
        for container in running { container.signal(SIGKILL) }
        for container in running { _ = await container.wait() }
        for name in self.entries.withLockedValue({ Array($0.keys) }) { await self.unpublish(name) }
    }

    /// What the claim on a container's name tells those who look it up.
    private func claimMetadata(_ request: ContainerRequest) -> [String: String] {
        ["node": self.node, "epoch": String(request.moves + 1), "digest": "container"]
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
        if let shares = request.cpuShares { limits.append("cpu shares \(shares)") }
        limits.append("root \(request.rootfs)")
        for publisher in entry.publishers {
            limits.append("publishes \(publisher.forwarding) as \(request.serviceName)")
        }
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

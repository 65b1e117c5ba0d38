import CFerryLinux
import FerryEndpoints
import FerryGuest
import FerryWire
import Foundation

/// The source's side of a move: hold the process, send its segments, ask the target to commit,
/// and let go only once it has.
extension ProcessHost {
    /// How long a process has to come to a safe point once asked.
    static let holdTimeout: Duration = .seconds(10)

    /// The scheduler's hold handler for process `name`: a move or kill someone asked for takes
    /// the hold; otherwise the guest called `ferry.go` and wants to move itself.
    func holdHandler(_ name: String) -> @Sendable (GuestTask, GuestTask.Hold) -> Void {
        { [weak self] task, hold in
            guard let self else { return }
            guard let process = self.processes.withLockedValue({ $0[name] }), process.task === task else {
                if case .ended(let outcome)? = self.processes.withLockedValue({ $0[name] })?.state {
                    // It ended while it ran (lost in post-copy): it stops here, for good.
                    self.scheduler.release(task, with: .failure(ProcessError(outcome.failure ?? "ended")))
                } else {
                    // No process of this node stands for the task any more: nothing would ever take it.
                    self.scheduler.resume(task)
                }
                return
            }
            if process.held(hold) { return }
            guard case .move(let node, let strong) = hold, process.beginMove() else {
                self.scheduler.resume(task)
                return
            }
            Task {
                do {
                    let report = try await self.send(
                        process,
                        task,
                        to: node,
                        mode: strong ? .strong : .weak,
                        initiative: "sender",
                        requested: process.heldAt ?? .now
                    )
                    self.logger.info(
                        "process '\(name)' moved itself to \(node) (\(report.mode), \(Int(report.downtimeMilliseconds)) ms down)"
                    )
                } catch {
                    self.logger.warning("process '\(name)' asked to go to \(node) and stays: \(error)")
                }
            }
        }
    }

    /// Moves process `name` from this node to `node`.
    ///
    /// - Parameter progress: told the memory bytes sent so far and in all, as they go.
    /// - Throws: why it could not move; the process then carries on here.
    public func migrate(
        _ name: String,
        to node: String,
        mode: MoveMode,
        limits: MoveLimits = MoveLimits(),
        initiative: String = "sender",
        progress: @escaping @Sendable (Int, Int) -> Void = { _, _ in }
    ) async throws -> MoveReport {
        let process = try self.process(name)
        guard node != self.node else { throw ProcessError("'\(name)' is on \(node) already") }
        guard !process.spec.isPinned else {
            throw ProcessError("'\(name)' is pinned to \(self.node) (spawned with --pin): it never moves")
        }
        // Before anything stops: a move to a node that does not exist is refused at once.
        let endpoint = try await self.migrationEndpoint(of: node)
        guard !process.fetchingPages else {
            throw ProcessError(
                "'\(name)' arrived by post-copy and some of its pages are still coming: move it once they are all here"
            )
        }
        guard let task = process.task, process.beginMove() else {
            throw ProcessError("'\(name)' is \(process.state.name), not running: it cannot move now")
        }
        let requested = ContinuousClock.now
        let opened: (Handover, WrittenPages?)
        do {
            opened = try await self.openWhileRunning(
                process,
                task,
                to: endpoint,
                mode: mode,
                // Hybrid: one pass while it runs; what it wrote meanwhile follows the commit.
                limits: mode == .hybrid ? MoveLimits(maxRounds: 1, autoConverge: false) : limits,
                progress: progress
            )
        } catch {
            process.moveAborted()
            throw error
        }
        // Calls that come from now on wait for the move's end; the one in progress is answered here.
        await process.calls.close(timeout: Self.holdTimeout)
        let holdRequested = ContinuousClock.now
        guard await process.hold(timeout: Self.holdTimeout, request: { self.scheduler.requestCapture(task) }) != nil
        else {
            process.calls.open()
            opened.0.abandon()
            task.throttlePercent = 0
            task.interrupt.cancel()
            process.moveAborted()
            if case .ended = process.state { throw ProcessError("'\(name)' ended before it could move") }
            throw ProcessError(
                "'\(name)' did not come to a safe point within \(Self.holdTimeout) (\(task.interrupt.refusal ?? "its module calls no unwinding import"))"
            )
        }
        return try await self.send(
            process,
            task,
            to: node,
            endpoint: endpoint,
            mode: mode,
            initiative: initiative,
            requested: requested,
            holdRequested: holdRequested,
            opened: opened,
            progress: progress
        )
    }

    /// What goes while the process still runs: the hand-over opened (the target checks the claim
    /// and gets the code), and with pre-copy its memory, then the pages it writes, in rounds (see
    /// ``Handover/copyWhileRunning``). The pages' tracker, with pre-copy.
    private func openWhileRunning(
        _ process: HostedProcess,
        _ task: GuestTask,
        to endpoint: ServiceEndpoint,
        mode: MoveMode,
        limits: MoveLimits,
        progress: @escaping @Sendable (Int, Int) -> Void
    ) async throws -> (Handover, WrittenPages?) {
        let handover = Handover(
            offer: try self.offer(for: process, task, mode: mode),
            code: self.code.bytes(of: ModuleDigest(hex: process.spec.digest)!) ?? [],
            progress: progress
        )
        guard mode.copiesWhileRunning else {
            let opened: Result<Void, any Error> = await Blocking.run { Result { try handover.open(to: endpoint) } }
            if case .failure(let error) = opened {
                handover.abandon()
                throw error
            }
            return (handover, nil)
        }
        guard let region = task.memoryRegion else {
            throw ProcessError(
                "pre-copy reads the process's memory while it runs, and its memory here could move when it grows (WasmKit's software bounds checks); use --mode stop-and-copy"
            )
        }
        let pages = WrittenPages(region)
        if let reason = pages.kernelUnavailable {
            self.logger.info("pre-copy of '\(process.name)' compares page checksums: \(reason)")
        }
        let copied: Result<Void, any Error> = await Blocking.run {
            Result {
                try handover.open(to: endpoint)
                try handover.copyWhileRunning(task, region: region, pages: pages, limits: limits)
            }
        }
        if case .failure(let error) = copied {
            handover.abandon()
            throw error
        }
        return (handover, pages)
    }

    /// What the source offers the target: the process, the claim it holds it under, and what the
    /// target must reach for it.
    private func offer(for process: HostedProcess, _ task: GuestTask, mode: MoveMode) throws -> MoveOffer {
        guard let lease = self.claims.lease(of: Self.claimName(process.name)) else {
            throw ProcessError("this node holds no claim on '\(process.name)'")
        }
        return MoveOffer(
            spec: process.spec,
            source: self.node,
            sourceLease: lease.leaseID,
            epoch: process.epoch,
            strong: mode.isStrong,
            preCopy: mode.copiesWhileRunning,
            postCopy: mode.fetchesAfterResuming,
            runningDigest: process.module.digest.hex,
            memoryBytes: task.memoryBytes,
            moves: process.moves,
            cpuMilliseconds: process.cpuTime.inMilliseconds,
            connections: process.services.connections,
            kvKeys: process.services.keys,
            lowers: self.describeLowers(of: process)
        )
    }

    /// Journals a held process as it stands, to go on from there after a crash of this node: its
    /// execution state, memory and writable layers.
    func journalHeld(
        _ process: HostedProcess,
        _ task: GuestTask,
        lease: UInt64,
        snapshot: GuestSnapshot,
        layers: [Int: PackedTree]
    ) throws {
        try task.withHeldMemory { memory in
            try self.journal?.write(
                ProcessJournal.Entry(
                    spec: process.spec,
                    epoch: process.epoch,
                    lease: lease,
                    moves: process.moves,
                    cpuMilliseconds: process.cpuTime.inMilliseconds,
                    captured: true,
                    goResult: -1,
                    restarts: false,
                    logBase: process.log.base
                ),
                state: snapshot,
                memory: memory,
                layers: layers
            )
        }
    }

    /// The process's writable layers, by value, by the index of their directory.
    static func packedLayers(of process: HostedProcess) throws -> [Int: PackedTree] {
        var layers: [Int: PackedTree] = [:]
        for index in process.directories.indices where process.directories[index].upper != nil {
            layers[index] = try PackedTree.pack(ProcessDirectories.upper(index, in: process.directory))
        }
        return layers
    }

    /// Where `node` takes processes: its registration's `migration` endpoint.
    func migrationEndpoint(of node: String) async throws -> ServiceEndpoint {
        guard let entry = try await self.claims.holder(of: "node:\(node)") else {
            throw ProcessError(
                "no node named '\(node)' is registered at \(self.configuration.registry)"
            )
        }
        guard let text = entry.metadata["migration"], let endpoint = ServiceEndpoint(text) else {
            throw ProcessError("node '\(node)' does not say where it takes processes (no migration endpoint)")
        }
        return endpoint
    }

    /// Sends a held process to `node` and settles the hand-over: released here once the target
    /// committed, running here again when it did not, and resolved at the endpoint daemon when
    /// the answer to the commit was lost.
    func send(
        _ process: HostedProcess,
        _ task: GuestTask,
        to node: String,
        endpoint known: ServiceEndpoint? = nil,
        mode: MoveMode,
        initiative: String,
        requested: ContinuousClock.Instant,
        holdRequested: ContinuousClock.Instant? = nil,
        opened: (Handover, WrittenPages?)? = nil,
        progress: @escaping @Sendable (Int, Int) -> Void = { _, _ in }
    ) async throws -> MoveReport {
        let claim = Self.claimName(process.name)
        do {
            guard let lease = self.claims.lease(of: claim) else {
                throw ProcessError("this node holds no claim on '\(process.name)'")
            }
            var endpoint = known
            if endpoint == nil { endpoint = try await self.migrationEndpoint(of: node) }
            let layers = try Self.packedLayers(of: process)
            let snapshot = try task.capture(epoch: process.epoch, withMemory: false)
            // Kept before anything leaves, so that a crash of this node at any later point can
            // be recovered from (see ProcessJournal).
            try self.journalHeld(process, task, lease: lease.leaseID, snapshot: snapshot, layers: layers)
            let handover: Handover
            if let (existing, _) = opened {
                handover = existing
            } else {
                handover = Handover(
                    offer: try self.offer(for: process, task, mode: mode),
                    code: self.code.bytes(of: ModuleDigest(hex: process.spec.digest)!) ?? [],
                    progress: progress
                )
            }
            let state = MoveState(
                memoryChecksum: 0,
                memoryBytes: 0,
                logBase: 0,
                log: [],
                layers: layers,
                mailbox: mode.isStrong ? task.environment.mailbox.carried() : nil
            )
            let target = endpoint!
            let handingOver = ContinuousClock.now
            let pages = opened?.1
            let open = opened == nil
            let log = process.log
            let outcome = await Blocking.run { () -> Handover.Outcome in
                if open {
                    do { try handover.open(to: target) } catch { return .failed(error, commitSent: false) }
                }
                return handover.finish(
                    snapshot: snapshot,
                    state: state,
                    log: log,
                    task: task,
                    pages: pages,
                    postCopy: mode.fetchesAfterResuming,
                    // Calls waiting here, and waits, go to the target at once.
                    onCommitted: { process.movedAway(to: node) }
                )
            }
            switch outcome {
            case .committed(let committed):
                self.released(process, task, to: node)
                let done = ContinuousClock.now
                let heldAt = process.heldAt ?? requested
                let downtime =
                    ((handover.committedAt ?? done) - heldAt) - .nanoseconds(committed.answeredAfterStartNanoseconds)
                var phases = handover.phases
                phases["hold"] = (heldAt - (holdRequested ?? requested)).reportedMilliseconds
                phases["prepare"] = (handingOver - heldAt).reportedMilliseconds
                if let failure = handover.pushFailure {
                    throw PagesLost(
                        description:
                            "'\(process.name)' resumed on \(node), but the move broke off before all of its pages were there (\(failure)): it is lost there"
                    )
                }
                return MoveReport(
                    process: process.name,
                    mode: mode.rawValue,
                    from: self.node,
                    to: node,
                    bytesSent: handover.bytesSent,
                    codeBytesSent: handover.codeBytesSent,
                    memoryBytes: handover.memoryBytes,
                    totalMilliseconds: (done - requested).reportedMilliseconds,
                    downtimeMilliseconds: max(0, downtime.reportedMilliseconds),
                    epoch: committed.epoch,
                    initiative: initiative,
                    phases: phases,
                    rounds: handover.copied.rounds,
                    pagesSent: handover.copied.pagesSent,
                    converged: handover.copied.converged,
                    throttled: handover.copied.throttled,
                    pagesOnDemand: handover.copied.pagesOnDemand,
                    tracking: handover.copied.tracking
                )
            case .failed(let error, let commitSent):
                guard commitSent else { throw error }
                // The target may have committed: the daemon knows who holds the process now.
                if try await self.resolveInDoubt(process, lease: lease, target: node) {
                    self.released(process, task, to: node)
                    throw ProcessError(
                        "the answer to the commit was lost (\(error)), but \(node) holds '\(process.name)' now: it moved"
                    )
                }
                throw error
            }
        } catch let lost as PagesLost {
            throw lost
        } catch {
            // Nothing left this node for good: the process goes on where it was.
            opened?.0.abandon()
            task.throttlePercent = 0
            self.scheduler.resume(task, goResult: -1)
            process.moveAborted()
            process.calls.open()
            throw error
        }
    }

    /// After a commit that went unanswered: whether the target holds the process. When it does
    /// not (it died, or never committed), this node claims the process again, which also fences
    /// off a late commit, and it runs on here.
    private func resolveInDoubt(_ process: HostedProcess, lease: EndpointLease, target: String) async throws -> Bool {
        let claim = Self.claimName(process.name)
        while true {
            do {
                // Same endpoints as the claim we hold: it replaces ours, unless the target took it over.
                let lease = try await self.claims.claim(
                    claim,
                    metadata: self.claimMetadata(process.spec, epoch: process.epoch)
                )
                self.journal?.update(process.name, epoch: process.epoch, lease: lease.leaseID)
                self.logger.warning("the move of '\(process.name)' to \(target) did not commit; it stays here")
                return false
            } catch let error as ErrorMessage where error.code == .held {
                guard let holder = try await self.claims.holder(of: claim), holder.metadata["node"] == target else {
                    throw ProcessError("'\(process.name)' is held by another node than \(target): \(error.message)")
                }
                switch await self.askHolds(process.name, at: holder.endpoints.first) {
                case true?:
                    return true
                case false?:
                    // The target took the claim, then died before the process ran: take it back.
                    let epoch = (UInt64(holder.metadata["epoch"] ?? "") ?? process.epoch) + 1
                    let lease = try await self.claims.claim(
                        claim,
                        metadata: self.claimMetadata(process.spec, epoch: epoch),
                        takeover: holder.leaseID
                    )
                    process.committed(epoch: epoch)
                    self.journal?.update(process.name, epoch: epoch, lease: lease.leaseID)
                    self.logger.warning(
                        "\(target) took '\(process.name)' over but does not run it; it runs here again at epoch \(epoch)"
                    )
                    return false
                case nil:
                    // The target cannot be asked: wait for it, or for its claim to run out.
                    try await Task.sleep(for: .seconds(1))
                }
            }
        }
    }

    /// Whether the node at `endpoint` runs `name`: nil when it cannot be asked (it does not answer
    /// in time), false when nothing listens there (it is gone) or it says no.
    func askHolds(_ name: String, at endpoint: ServiceEndpoint?) async -> Bool? {
        guard let endpoint else { return false }
        do {
            let client = try await NodeClient.connect(to: endpoint, timeout: .seconds(2))
            defer { Task { await client.close() } }
            guard case .holds(let holds) = try await client.request(.holds(name), timeout: .seconds(2)) else {
                return nil
            }
            return holds
        } catch let error as NodeClient.Unreachable where error.refused {
            return false
        } catch {
            return nil
        }
    }

    /// The target committed: the process is gone from here.
    private func released(_ process: HostedProcess, _ task: GuestTask, to node: String) {
        HandoverPhase.reached(.sourceRelease, on: .source)
        self.claims.forget(Self.claimName(process.name))
        self.journal?.remove(process.name)
        process.services.closeAll()
        self.scheduler.release(task, with: .failure(ProcessMoved(node: node)))
    }
}

/// Post-copy broke off after the commit: the process is the target's, and it is lost there.
struct PagesLost: Error, CustomStringConvertible {
    let description: String
}

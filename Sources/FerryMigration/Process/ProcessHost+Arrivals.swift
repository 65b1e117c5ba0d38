import CFerryLinux
import FerryEndpoints
import FerryGuest
import FerryWire
import Foundation

/// The target's side of a move (see ``Handover``): it takes a process only from the node that
/// holds its claim, at the epoch the daemon knows, checks the code's signature before parsing
/// it, holds the whole state before it takes the claim over, and runs the process only then.
extension ProcessHost {
    /// Handles one connection of the migration port, on its own thread. Whatever goes wrong
    /// ends this connection only, with one logged line.
    func arrive(_ socket: MigrationSocket) {
        defer { socket.close() }
        var greeting = [UInt8](repeating: 0, count: MigrationSocket.magic.count)
        do {
            try greeting.withUnsafeMutableBytes { try socket.receive(into: $0) }
        } catch {
            return
        }
        guard greeting == MigrationSocket.magic else {
            self.logger.warning(
                "garbage on the migration port from \(socket.peer) (it does not start with FMIG); closed that connection"
            )
            return
        }
        do {
            let offer = try socket.receive(.offer, json: MoveOffer.self)
            do {
                try self.receive(offer, over: socket)
            } catch let error as MigrationError {
                throw error
            } catch {
                // A refusal the source hears: why this node will not take the process.
                try? socket.send(.refuse, json: MoveRefusal(reason: "\(error)"))
                throw error
            }
        } catch {
            self.logger.warning("a process from \(socket.peer) did not arrive: \(error)")
        }
    }

    private func receive(_ offer: MoveOffer, over socket: MigrationSocket) throws {
        let name = offer.spec.name
        try ProcessSpec.validate(name: name)
        try self.checkClaim(offer, peer: socket.peer)
        guard !self.holds(name) else { throw ProcessError("a process named '\(name)' runs here already") }
        let limit = offer.spec.limits.maxMemoryBytes
        guard offer.memoryBytes <= limit else {
            throw ProcessError("its \(offer.memoryBytes) bytes of memory are over its limit of \(limit)")
        }
        if offer.postCopy == true {
            if let reason = MissingPages.kernelRefusal {
                throw ProcessError(
                    "this node cannot take pages after the process resumes: \(reason); use --mode pre-copy"
                )
            }
            guard offer.strong else { throw ProcessError("post-copy moves a process with its execution state") }
        }
        guard let digest = ModuleDigest(hex: offer.spec.digest) else {
            throw ProcessError("'\(offer.spec.digest)' is not a module digest")
        }
        // Its connections first: one this node cannot reach refuses the move before anything is sent.
        let services = ProcessServices(local: self.local, kv: self.kv, data: self.dataSets)
        try services.reestablish(offer.connections, keys: offer.kvKeys)
        var committed = false
        defer { if !committed { services.closeAll() } }
        let needCode = !self.code.has(digest)
        try socket.send(.accept, json: MoveAcceptance(needCode: needCode))

        let original: GuestModule
        if needCode {
            let (_, bytes) = try socket.receive(.code)
            original = try self.code.admit(bytes, expected: digest)
            // Said before the memory comes: a refused module costs the source no memory sent.
            try socket.send(.accept, json: MoveAcceptance(needCode: false))
        } else {
            guard let held = try self.code.module(digest) else { throw ProcessError("module \(digest.short) vanished") }
            original = held
        }
        HandoverPhase.reached(.codeSent, on: .target)
        let module = self.runnable(original)
        if offer.strong, module.digest.hex != offer.runningDigest {
            throw ProcessError(
                "this node makes module \(digest.short) movable as \(module.digest.short), the source ran \(offer.runningDigest.prefix(12)): a strong move needs the same (is Binaryen the same version on both?)"
            )
        }

        // The process and its instance first, so that its memory arrives straight into the guest.
        let epoch = offer.epoch + 1
        // Its read-only layers where this node sees them as the source did; copies filled on
        // first use where it does not.
        let spec = try self.resolveLowers(offer.spec, offer.lowers)
        let process = try self.makeProcess(
            spec,
            module: module,
            epoch: epoch,
            moves: offer.moves + 1,
            cpuBefore: .milliseconds(Int64(offer.cpuMilliseconds)),
            state: .moving,
            services: services,
            cameFrom: offer.source
        )
        let environment = self.environment(for: process)
        let arrival = try self.scheduler.prepareArrival(
            module,
            memoryBytes: offer.memoryBytes,
            limits: spec.limits,
            environment: environment
        )
        // Found while its memory is fresh: the check (madvise over the 4 GiB reservation) costs
        // in proportion to what is populated, and the region never moves.
        let region = offer.postCopy == true ? arrival.memoryRegion : nil
        if offer.postCopy == true, region == nil {
            throw ProcessError(
                "post-copy fills the process's memory in place, and memory here could move when it grows (WasmKit's software bounds checks); use --mode pre-copy"
            )
        }
        var checksum: UInt32 = 0
        var (type, length) = try socket.receiveHeader()
        if offer.preCopy == true {
            // Pages while the process runs at the source, then those it wrote since, at its stop.
            while type == .pages {
                try socket.receivePages(length: length) { offset, count in
                    guard offset + count <= spec.limits.maxMemoryBytes else {
                        throw ProcessError(
                            "pages at \(offset) lie past its memory limit of \(spec.limits.maxMemoryBytes)"
                        )
                    }
                    try arrival.grow(to: offset + count)
                    return try arrival.withMemory {
                        UnsafeMutableRawBufferPointer(rebasing: $0[offset..<(offset + count)])
                    }
                }
                (type, length) = try socket.receiveHeader()
            }
        } else if offer.postCopy != true {
            // The offer went while the process ran: its memory may have grown before it stopped.
            guard type == .memory, length >= offer.memoryBytes, length <= spec.limits.maxMemoryBytes else {
                throw MigrationError.protocolViolation(
                    "expected \(offer.memoryBytes) bytes of memory or more from \(socket.peer), got a \(type) frame of \(length)"
                )
            }
            try arrival.grow(to: length)
            checksum = try arrival.withMemory { memory in
                try socket.receive(into: UnsafeMutableRawBufferPointer(rebasing: memory[0..<length]), checksum: true)
            }
            (type, length) = try socket.receiveHeader()
        }
        HandoverPhase.reached(.memorySent, on: .target)

        guard type == .state, length <= MigrationSocket.maxFrameBytes else {
            throw MigrationError.protocolViolation(
                "expected the state from \(socket.peer), got a \(type) frame of \(length)"
            )
        }
        var payload = [UInt8](repeating: 0, count: length)
        try payload.withUnsafeMutableBytes { try socket.receive(into: $0) }
        guard payload.count >= 4 else {
            throw MigrationError.protocolViolation("a state frame of \(payload.count) bytes")
        }
        let snapshotLength = payload[0..<4].reduce(0) { $0 << 8 | Int($1) }
        guard 4 + snapshotLength <= payload.count else {
            throw MigrationError.protocolViolation("a state frame cut short")
        }
        let snapshot = try GuestSnapshot(serialized: Array(payload[4..<(4 + snapshotLength)]))
        let moveState: MoveState
        do {
            moveState = try JSONDecoder().decode(MoveState.self, from: Data(payload[(4 + snapshotLength)...]))
        } catch {
            throw MigrationError.protocolViolation("a malformed state frame: \(error)")
        }
        if offer.preCopy == true || offer.postCopy == true {
            try arrival.grow(to: moveState.memoryBytes)
        } else {
            guard checksum == moveState.memoryChecksum else { throw GuestSnapshotError.checksumMismatch }
        }
        guard snapshot.epoch == offer.epoch else {
            throw ProcessError("the snapshot is of epoch \(snapshot.epoch), the process is at \(offer.epoch)")
        }
        guard snapshot.moduleDigest == module.digest || !offer.strong else { throw GuestSnapshotError.wrongModule }
        HandoverPhase.reached(.stateSent, on: .target)

        process.log.reset(base: moveState.logBase, initial: moveState.log)
        if let mailbox = moveState.mailbox { environment.mailbox.restore(mailbox) }  // a strong move's
        for (index, tree) in moveState.layers {
            try tree.unpack(into: ProcessDirectories.upper(index, in: process.directory))
        }
        // Post-copy: the pages not sent yet are emptied and wait for the source; the first come now.
        var fetcher: PageFetcher?
        if let region, let missing = moveState.missing, !missing.isEmpty {
            fetcher = PageFetcher(
                pages: try MissingPages(region, bytes: moveState.memoryBytes, missing: missing),
                socket: socket,
                missing: missing
            )
        }
        let task = try self.scheduler.adopt(
            snapshot,
            arrival: arrival,
            continuation: offer.strong ? .whereItStopped : .restart,
            resultBytes: offer.spec.resultBytes ?? 0,
            start: false,
            onHold: self.holdHandler(name)
        )

        if let fetcher {
            (type, length) = try socket.receiveHeader()
            while type == .pages {
                try fetcher.receive(length: length)
                (type, length) = try socket.receiveHeader()
            }
            guard type == .commit, length == 0 else {
                throw MigrationError.protocolViolation("expected the commit from \(socket.peer), got a \(type) frame")
            }
        } else {
            _ = try socket.receive(.commit)
        }
        // Known here before the claim is taken, so that a source asking whether this node holds
        // the process never hears no from a node about to run it.
        let placed = self.processes.withLockedValue { processes in
            switch processes[name]?.state {
            case .running?, .moving?: return false
            default:
                processes[name] = process
                return true
            }
        }
        guard placed else { throw ProcessError("a process named '\(name)' arrived here meanwhile") }
        let lease: EndpointLease
        do {
            lease = try Blocking.wait {
                try await self.claims.claim(
                    Self.claimName(name),
                    metadata: self.claimMetadata(spec, epoch: epoch),
                    takeover: offer.sourceLease
                )
            }
        } catch {
            self.processes.withLockedValue { _ = $0.removeValue(forKey: name) }
            process.calls.shut()
            throw ProcessError("cannot take over its claim: \(error)")
        }
        HandoverPhase.reached(.commit, on: .target)
        committed = true
        // The state it arrived with, so that it survives a crash of this node from here on. (Post-copy:
        // its memory is not all here; it is journaled once it is.)
        if fetcher == nil {
            do {
                try arrival.withMemory { memory in
                    try self.journal?.write(
                        ProcessJournal.Entry(
                            spec: spec,
                            epoch: epoch,
                            lease: lease.leaseID,
                            moves: offer.moves + 1,
                            cpuMilliseconds: offer.cpuMilliseconds,
                            captured: true,
                            goResult: 0,
                            restarts: !offer.strong,
                            logBase: process.log.base
                        ),
                        state: snapshot,
                        memory: UnsafeRawBufferPointer(memory),
                        layers: moveState.layers
                    )
                }
            } catch {
                self.logger.error(
                    "cannot journal the arrival of '\(name)': \(error); a crash of this node would lose it"
                )
            }
        }
        process.fetchingPages = fetcher != nil
        process.committed(epoch: epoch)
        self.track(process, task: task)
        process.calls.open()
        fetcher?.answerFaults()
        self.scheduler.start(task)
        // Answer once the process ran here, so that the source can tell its downtime.
        let deadline = ContinuousClock.now + .seconds(1)
        while task.firstSliceAt == nil, !task.isFinished, ContinuousClock.now < deadline { usleep(50) }
        let answered = ContinuousClock.now
        let started = task.firstSliceAt ?? answered
        let answer = MoveCommitted(
            epoch: epoch,
            answeredAfterStartNanoseconds: Int64((answered - started).inMilliseconds * 1e6)
        )
        if let fetcher {
            try? fetcher.send { try $0.send(.committed, json: answer) }
        } else {
            try? socket.send(.committed, json: answer)
        }
        self.logger.info(
            "process '\(name)' arrived from \(offer.source) (\(offer.mode.rawValue), epoch \(epoch))"
        )
        HandoverPhase.reached(.sourceRelease, on: .target)
        if let fetcher {
            self.fetchRest(process, task, with: fetcher, from: offer.source, lease: lease.leaseID)
        } else {
            _ = try? socket.receive(.released)
        }
    }

    /// Post-copy after the commit: the pages still at the source come while the process runs.
    /// When the source goes before they are all here, the process is lost, and said to be.
    private func fetchRest(
        _ process: HostedProcess,
        _ task: GuestTask,
        with fetcher: PageFetcher,
        from source: String,
        lease: UInt64
    ) {
        do {
            try fetcher.receiveRest()
            // No page can be missing now: the fault thread has nothing left to ask for.
            fetcher.stop()
            self.logger.info("all \(fetcher.expected) pages of '\(process.name)' came after it resumed")
            // Before the move ends for whoever asked for it: the process is not held for it later.
            if self.journal != nil { try? Blocking.wait { await self.journalRunning(process, task, lease: lease) } }
            process.fetchingPages = false
            try? fetcher.complete()
            fetcher.join()
        } catch {
            fetcher.stop()
            fetcher.join()
            let reason =
                "lost in post-copy: \(source) went while \(fetcher.expected - fetcher.arrived) of its pages were still there (\(error))"
            self.logger.error("process '\(process.name)' \(reason)")
            // Held at its next safe point and ended there; it wakes to empty pages once the
            // fetcher lets go of its memory, and never runs on them to an effect anyone sees.
            self.scheduler.requestCapture(task)
            process.ended(ProcessOutcome(failure: reason))
            self.journal?.remove(process.name)
        }
    }

    /// Journals a process that runs here now (post-copy, once its pages are all here): held at a
    /// safe point, so that its state and its memory are of the same instant.
    private func journalRunning(_ process: HostedProcess, _ task: GuestTask, lease: UInt64) async {
        guard process.beginMove() else { return }
        defer { process.moveAborted() }
        guard await process.hold(timeout: Self.holdTimeout, request: { self.scheduler.requestCapture(task) }) != nil
        else {
            task.interrupt.cancel()
            self.logger.error("cannot journal '\(process.name)': it did not come to a safe point")
            return
        }
        defer { self.scheduler.resume(task) }
        do {
            let snapshot = try task.capture(epoch: process.epoch, withMemory: false)
            try self.journalHeld(
                process,
                task,
                lease: lease,
                snapshot: snapshot,
                layers: try Self.packedLayers(of: process)
            )
        } catch {
            self.logger.error("cannot journal '\(process.name)': \(error); a crash of this node would lose it")
        }
    }

    /// A process is taken only from the node that holds its claim now, under the lease and at
    /// the epoch it names: a snapshot from any other peer, or an older epoch, is refused.
    private func checkClaim(_ offer: MoveOffer, peer: String) throws {
        let claim = Self.claimName(offer.spec.name)
        guard let holder = try Blocking.wait({ try await self.claims.holder(of: claim) }) else {
            throw ProcessError("no node holds '\(offer.spec.name)' at the endpoint daemon; refusing its snapshot")
        }
        guard holder.leaseID == offer.sourceLease, holder.metadata["node"] == offer.source else {
            throw ProcessError(
                "'\(offer.spec.name)' is held by \(holder.metadata["node"] ?? "another node") under another lease, not by \(offer.source) at \(peer): not a peer to take it from"
            )
        }
        let epoch = UInt64(holder.metadata["epoch"] ?? "") ?? 0
        guard epoch == offer.epoch else {
            throw ProcessError("the offer is of epoch \(offer.epoch), but '\(offer.spec.name)' is at epoch \(epoch)")
        }
        if let host = holder.endpoints.first?.host,
            let peerHost = peer.split(separator: ":").dropLast().joined(separator: ":")
                .nilIfEmpty, host != peerHost, host.first?.isNumber == true
        {
            throw ProcessError("the claim's holder is at \(host), but the offer came from \(peer)")
        }
    }
}

extension String {
    var nilIfEmpty: String? { self.isEmpty ? nil : self }
}

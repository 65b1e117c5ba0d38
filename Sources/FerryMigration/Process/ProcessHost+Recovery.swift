import FerryEndpoints
import FerryGuest
import FerryWire
import Foundation

/// A node that restarts with its data directory takes back the processes its journal names —
/// those it ran, and those it was sending away when it stopped — unless another node runs them
/// now. The endpoint daemon decides: the node takes a process back only by claiming it, so two
/// nodes never both run it.
extension ProcessHost {
    /// Recovers every process in the journal, in the background; processes whose fate cannot be
    /// settled yet (the node holding their claim does not answer) are tried again every 2 seconds.
    public func recover() {
        guard let journal = self.journal else { return }
        for (entry, state, layers, problem) in journal.entries() {
            if let problem {
                self.logger.error("the journal of '\(entry.spec.name)' is damaged (\(problem)); it cannot be recovered")
                journal.remove(entry.spec.name)
                continue
            }
            Task { await self.recover(entry, state: state, layers: layers) }
        }
    }

    private func recover(_ entry: ProcessJournal.Entry, state: GuestSnapshot?, layers: [Int: PackedTree]) async {
        let name = entry.spec.name
        let claim = Self.claimName(name)
        while !Task.isCancelled {
            do {
                var epoch = entry.epoch
                let lease: EndpointLease
                do {
                    lease = try await self.claims.claim(
                        claim,
                        metadata: self.claimMetadata(entry.spec, epoch: epoch),
                        takeover: entry.lease
                    )
                } catch let error as ErrorMessage where error.code == .held {
                    guard let holder = try await self.claims.holder(of: claim) else { continue }
                    if holder.metadata["node"] != self.node {
                        switch await self.askHolds(name, at: holder.endpoints.first) {
                        case true?:
                            self.logger.info(
                                "'\(name)' runs on \(holder.metadata["node"] ?? "another node") now; not recovering it here"
                            )
                            self.journal?.remove(name)
                            return
                        case nil:
                            try await Task.sleep(for: .seconds(2))
                            continue
                        case false?:
                            epoch = (UInt64(holder.metadata["epoch"] ?? "") ?? epoch) + 1
                        }
                    }
                    // This node's earlier run held it under another lease, or its holder is gone.
                    lease = try await self.claims.claim(
                        claim,
                        metadata: self.claimMetadata(entry.spec, epoch: epoch),
                        takeover: holder.leaseID
                    )
                }
                try self.resume(entry, state: state, layers: layers, epoch: epoch, lease: lease)
                return
            } catch {
                self.logger.warning("cannot recover '\(name)' yet: \(error); trying again")
                try? await Task.sleep(for: .seconds(2))
            }
        }
    }

    private func resume(
        _ entry: ProcessJournal.Entry,
        state: GuestSnapshot?,
        layers: [Int: PackedTree],
        epoch: UInt64,
        lease: EndpointLease
    ) throws {
        let spec = entry.spec
        guard let digest = ModuleDigest(hex: spec.digest), let original = try self.code.module(digest) else {
            throw ProcessError("its module \(spec.digest.prefix(12)) is no longer in this node's code store")
        }
        let module = self.runnable(original)
        let process = try self.makeProcess(
            spec,
            module: module,
            epoch: epoch,
            moves: entry.moves,
            cpuBefore: .milliseconds(Int64(entry.cpuMilliseconds)),
            log: (entry.logBase, []),
            recovering: true
        )
        // Its files as they were in the state it goes on from (none, when it starts again).
        for index in process.directories.indices where process.directories[index].upper != nil {
            let upper = ProcessDirectories.upper(index, in: process.directory)
            try? FileManager.default.removeItem(atPath: upper)
            try (layers[index] ?? PackedTree()).unpack(into: upper)
        }
        let task: GuestTask
        if let state {
            task = try self.scheduler.adopt(
                state,
                module: module,
                continuation: entry.restarts ? .restart : .whereItStopped,
                limits: spec.limits,
                environment: self.environment(for: process),
                resultBytes: spec.resultBytes ?? 0,
                goResult: entry.goResult,
                start: false,
                onHold: self.holdHandler(spec.name)
            )
        } else {
            let arguments =
                spec.export == nil
                ? []
                : try GuestValues.parse(spec.arguments, as: try module.parameters(of: spec.entry), export: spec.entry)
            task = self.scheduler.spawn(
                module,
                export: spec.entry,
                arguments: arguments,
                limits: spec.limits,
                environment: self.environment(for: process),
                resultBytes: spec.resultBytes ?? 0,
                start: false,
                onHold: self.holdHandler(spec.name)
            )
        }
        self.track(process, task: task)
        self.scheduler.start(task)
        self.journal?.update(spec.name, epoch: epoch, lease: lease.leaseID)
        self.logger.info(
            "recovered '\(spec.name)' at epoch \(epoch) \(state == nil ? "from its start" : "from the state it was captured in")"
        )
    }
}

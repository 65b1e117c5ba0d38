import CFerryLinux
import FerryEndpoints
import FerryGuest
import Foundation

/// The source's half of one hand-over, on a blocking socket:
///
/// ```
/// source                                   target
///   offer (name, lease, epoch, sizes)  ──▶   checks the claim at the daemon
///                                      ◀──   accept (needs code?) | refuse
///   code, if it lacks the digest       ──▶   checks the signature, keeps it   (code sent)
///   memory, straight from the guest    ──▶   straight into the new instance   (memory sent)
///   state: stack, globals, log, layers ──▶   builds the process, not running  (state sent)
///   commit                             ──▶   takes the claim over at the daemon, starts it  (commit)
///                                      ◀──   committed (epoch)
///   lets go                                                                    (source release)
/// ```
///
/// Until commit is sent the process is the source's and it resumes on any failure; after,
/// the outcome is whatever the daemon says. With pre-copy, memory goes as pages frames while the
/// process still runs (``copyWhileRunning(_:region:pages:limits:)``), and only the pages written
/// since go at the stop. With post-copy, only the pages its first instructions need go before
/// the commit, and the rest after it, pushed or asked for (Handover+PostCopy.swift).
final class Handover: @unchecked Sendable {
    // Sendable: run on one thread at a time; the counts are read after it returns.
    enum Outcome: Sendable {
        case committed(MoveCommitted)
        case failed(any Error, commitSent: Bool)
    }

    /// What went of memory, and how.
    struct Copied: Sendable {
        /// Passes over memory: pre-copy's rounds while the process ran, and the one at its stop.
        var rounds = 0
        var pagesSent = 0
        var converged = false
        /// Auto-converge's last throttle, in percent of the process's time.
        var throttled = 0
        /// Post-copy: pages the target asked for.
        var pagesOnDemand = 0
        /// Pre-copy: how written pages were found, `kernel` or `checksums`.
        var tracking: String?
    }

    let offer: MoveOffer
    let code: [UInt8]
    let progress: @Sendable (Int, Int) -> Void
    private(set) var socket: MigrationSocket?
    private(set) var bytesSent = 0
    private(set) var codeBytesSent = 0
    var copied = Copied()
    /// Pages written since they were last sent (pre-copy): they go at the stop.
    private var pending: [Range<Int>] = []
    /// The process's memory at its stop, in bytes.
    private(set) var memoryBytes = 0
    /// When the target's answer to the commit came (post-copy pushes pages after it).
    private(set) var committedAt: ContinuousClock.Instant?
    /// Post-copy: why the pages that follow the commit stopped going, if they did.
    private(set) var pushFailure: (any Error)?
    /// How long each step took, in milliseconds, by name (`connect`, `offer`, `code`,
    /// `pre-copy`, `memory`, `state`, `commit`), for the report.
    private(set) var phases: [String: Double] = [:]
    private var phaseStarted = ContinuousClock.now

    init(offer: MoveOffer, code: [UInt8], progress: @escaping @Sendable (Int, Int) -> Void) {
        self.offer = offer
        self.code = code
        self.progress = progress
    }

    /// Timeouts of each read and write: a target that stops answering fails the move.
    static let timeout: Duration = .seconds(30)

    /// Notes that the step `name` ended now.
    private func timed(_ name: String) {
        let now = ContinuousClock.now
        self.phases[name] = (now - self.phaseStarted).reportedMilliseconds
        self.phaseStarted = now
    }

    /// Connects, offers the process and sends the code if the target lacks it. Nothing of the
    /// process has left yet: on any error it simply goes on here.
    func open(to endpoint: ServiceEndpoint) throws {
        self.phaseStarted = ContinuousClock.now
        let socket = try MigrationSocket.connect(to: endpoint, timeout: Self.timeout)
        self.socket = socket
        self.timed("connect")
        try socket.send(.offer, json: self.offer)
        let acceptance = try Self.accepted(socket)
        self.timed("offer")
        if acceptance.needCode {
            try socket.send(.code, self.code)
            self.codeBytesSent = self.code.count + 9
            _ = try Self.accepted(socket)
            self.timed("code")
        }
        HandoverPhase.reached(.codeSent, on: .source)
    }

    /// Pre-copy: sends the guest's memory while it runs, then in rounds the pages it wrote
    /// meanwhile, until what is left could go within the downtime asked for at the bandwidth
    /// measured, or the rounds run out (then it did not converge, and the rest goes at the stop).
    /// A round after which the guest had written more than half of what the round sent slows the
    /// guest down, as QEMU's auto-converge does: 20% of its time first, 10 more each such round.
    func copyWhileRunning(_ task: GuestTask, region: GuestMemoryRegion, pages: WrittenPages, limits: MoveLimits) throws
    {
        self.copied.tracking = pages.kernelUnavailable == nil ? "kernel" : "checksums"
        var dirty = try pages.collect(upTo: task.memoryBytes)
        var bytesPerSecond = 0.0
        while true {
            self.copied.rounds += 1
            let started = ContinuousClock.now
            let bytes = try self.sendPages(dirty, from: region.base, copying: true)
            let seconds = (ContinuousClock.now - started).inMilliseconds / 1000
            if bytes > 0, seconds > 0 { bytesPerSecond = max(bytesPerSecond, Double(bytes) / seconds) }
            dirty = try pages.collect(upTo: task.memoryBytes)
            let left = Double(dirty.reduce(0) { $0 + $1.count })
            if left == 0 || (bytesPerSecond > 0 && left / bytesPerSecond <= limits.maxDowntimeMilliseconds / 1000) {
                self.copied.converged = true
                break
            }
            if self.copied.rounds >= limits.maxRounds { break }
            if limits.autoConverge, self.copied.rounds > 1, left > Double(bytes) / 2 {
                self.copied.throttled = self.copied.throttled == 0 ? 20 : min(99, self.copied.throttled + 10)
                task.throttlePercent = self.copied.throttled
            }
        }
        self.pending = dirty
        self.timed("pre-copy")
    }

    /// Sends `runs` of memory at `base` as pages frames, a megabyte at a time; with `copying`,
    /// each piece is copied first, so that what is sent matches its checksum while the guest
    /// writes on. Returns the bytes sent.
    func sendPages(_ runs: [Range<Int>], from base: UnsafeMutableRawPointer, copying: Bool) throws -> Int {
        guard let socket = self.socket else { return 0 }
        let piece = 1 << 20
        var copy = [UInt8](repeating: 0, count: copying ? piece : 0)
        var sent = 0
        for run in runs {
            var offset = run.lowerBound
            while offset < run.upperBound {
                let count = min(piece, run.upperBound - offset)
                if copying {
                    try copy.withUnsafeMutableBytes { buffer in
                        buffer.baseAddress!.copyMemory(from: base + offset, byteCount: count)
                        try socket.sendPages(at: offset, UnsafeRawBufferPointer(rebasing: buffer[0..<count]))
                    }
                } else {
                    try socket.sendPages(at: offset, UnsafeRawBufferPointer(start: base + offset, count: count))
                }
                offset += count
                sent += count
            }
        }
        self.copied.pagesSent += sent / WrittenPages.pageSize
        return sent
    }

    /// The rest, once the process is held: its memory (all of it, with pre-copy the pages
    /// written since the last round, with post-copy only what its first instructions need), its
    /// state, and the commit; with post-copy then the pages still missing. Until commit is sent
    /// the process is the source's; after, the outcome is whatever the daemon says. `onCommitted`
    /// is told as soon as the target answered the commit.
    func finish(
        snapshot: GuestSnapshot,
        state: MoveState,
        log: ProcessLog,
        task: GuestTask,
        pages: WrittenPages? = nil,
        postCopy: Bool = false,
        onCommitted: () -> Void = {}
    ) -> Outcome {
        var commitSent = false
        guard let socket = self.socket else {
            return .failed(MigrationError.transport("the hand-over was never opened"), commitSent: false)
        }
        defer {
            self.bytesSent = socket.bytesSent
            socket.close()
        }
        task.throttlePercent = 0
        var state = state
        do {
            self.memoryBytes = try task.withHeldMemory { $0.count }
            var missing: [Range<Int>] = []
            if postCopy {
                // Nothing of memory goes now: the pages not sent yet are named, and follow.
                try task.withHeldMemory { memory in
                    state.memoryBytes = memory.count
                    missing =
                        try pages.map { Self.union(self.pending, try $0.collect(upTo: memory.count)) } ?? [
                            0..<memory.count
                        ]
                }
                state.missing = missing
            } else if let pages {
                // Pre-copy: what was written since the last round, from memory that stands still.
                try task.withHeldMemory { memory in
                    let base = UnsafeMutableRawPointer(mutating: memory.baseAddress!)
                    let last = try pages.collect(upTo: memory.count)
                    _ = try self.sendPages(Self.union(self.pending, last), from: base, copying: false)
                    state.memoryBytes = memory.count
                }
                self.copied.rounds += 1
            } else {
                var checksum: UInt32 = 0
                try task.withHeldMemory { memory in
                    var hashed = 0
                    try socket.send(.memory, from: memory) { sent in
                        // The checksum runs behind the sending, chunk by chunk, on the same pass.
                        checksum = ferry_crc32c(checksum, memory.baseAddress! + hashed, sent - hashed)
                        hashed = sent
                        self.progress(sent, memory.count)
                    }
                    self.copied = Copied(rounds: 1, pagesSent: memory.count / WrittenPages.pageSize, converged: true)
                }
                state.memoryChecksum = checksum
            }
            self.timed("memory")
            HandoverPhase.reached(.memorySent, on: .source)

            let tail = log.tail()
            state.logBase = tail.base
            state.log = tail.bytes
            let extra = Array(try JSONEncoder().encode(state))
            try socket.send(.state, Self.lengthPrefixed(snapshot.serialized()) + extra)
            var first: [Range<Int>] = []
            if postCopy {
                first = Self.intersection(missing, Self.neededFirst(stack: task.heldStack))
                try task.withHeldMemory { memory in
                    _ = try self.sendPages(
                        first,
                        from: UnsafeMutableRawPointer(mutating: memory.baseAddress!),
                        copying: false
                    )
                }
            }
            self.timed("state")
            HandoverPhase.reached(.stateSent, on: .source)

            try socket.send(.commit)
            commitSent = true
            HandoverPhase.reached(.commit, on: .source)
            var wanted: [Int] = []
            var answer: (MigrationSocket.FrameType, [UInt8])
            repeat {
                // The process may run at the target and ask for pages before the answer comes.
                answer = try socket.receive(.committed, .refuse, .want)
                if answer.0 == .want { wanted.append(try MigrationSocket.wanted(answer.1)) }
            } while answer.0 == .want
            if answer.0 == .refuse {
                let refusal = try? JSONDecoder().decode(MoveRefusal.self, from: Data(answer.1))
                // Refused at the commit: the target holds nothing, the claim is still ours.
                commitSent = false
                throw MigrationError.refused(refusal?.reason ?? "no reason given")
            }
            let committed = try JSONDecoder().decode(MoveCommitted.self, from: Data(answer.1))
            self.committedAt = .now
            // The process is the target's from here, while post-copy's pages still follow.
            onCommitted()
            self.timed("commit")
            if postCopy && !missing.isEmpty {
                do {
                    try task.withHeldMemory { memory in
                        try self.push(Self.subtracting(first, from: missing), from: memory, wanted: wanted)
                    }
                    self.timed("post-copy")
                } catch {
                    self.pushFailure = error
                }
            } else {
                try? socket.send(.released)
            }
            return .committed(committed)
        } catch {
            return .failed(error, commitSent: commitSent)
        }
    }

    /// Closes the connection of a hand-over that ends before ``finish``.
    func abandon() {
        self.socket?.close()
    }

    /// Runs of pages in either list, in order, overlapping runs joined.
    static func union(_ first: [Range<Int>], _ second: [Range<Int>]) -> [Range<Int>] {
        var joined: [Range<Int>] = []
        for run in (first + second).sorted(by: { $0.lowerBound < $1.lowerBound }) {
            if let last = joined.last, run.lowerBound <= last.upperBound {
                joined[joined.count - 1] = last.lowerBound..<max(last.upperBound, run.upperBound)
            } else {
                joined.append(run)
            }
        }
        return joined
    }

    /// The target's accept, or its refusal thrown with the reason.
    private static func accepted(_ socket: MigrationSocket) throws -> MoveAcceptance {
        let (type, payload) = try socket.receive(.accept, .refuse)
        if type == .refuse {
            let refusal = try? JSONDecoder().decode(MoveRefusal.self, from: Data(payload))
            throw MigrationError.refused(refusal?.reason ?? "no reason given")
        }
        return try JSONDecoder().decode(MoveAcceptance.self, from: Data(payload))
    }

    static func lengthPrefixed(_ bytes: [UInt8]) -> [UInt8] {
        let count = UInt32(bytes.count)
        return [UInt8(count >> 24), UInt8(count >> 16 & 0xFF), UInt8(count >> 8 & 0xFF), UInt8(count & 0xFF)] + bytes
    }
}

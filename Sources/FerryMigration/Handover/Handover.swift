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
/// the outcome is whatever the daemon says.
final class Handover: @unchecked Sendable {
    // Sendable: run on one thread; the counts are read after it returns.
    enum Outcome: Sendable {
        case committed(MoveCommitted)
        case failed(any Error, commitSent: Bool)
    }

    let offer: MoveOffer
    let snapshot: GuestSnapshot
    var state: MoveState
    let log: ProcessLog
    let code: [UInt8]
    let task: GuestTask
    let progress: @Sendable (Int, Int) -> Void
    private(set) var bytesSent = 0
    private(set) var codeBytesSent = 0
    /// How long each step took, in milliseconds, by name (`connect`, `offer`, `code`, `memory`,
    /// `state`, `commit`), for the report.
    private(set) var phases: [String: Double] = [:]
    private var phaseStarted = ContinuousClock.now

    /// Notes that the step `name` ended now.
    private func timed(_ name: String) {
        let now = ContinuousClock.now
        self.phases[name] = ((now - self.phaseStarted).inMilliseconds * 1000).rounded() / 1000
        self.phaseStarted = now
    }

    init(
        offer: MoveOffer,
        snapshot: GuestSnapshot,
        state: MoveState,
        log: ProcessLog,
        code: [UInt8],
        task: GuestTask,
        progress: @escaping @Sendable (Int, Int) -> Void
    ) {
        self.offer = offer
        self.snapshot = snapshot
        self.state = state
        self.log = log
        self.code = code
        self.task = task
        self.progress = progress
    }

    /// Timeouts of each read and write: a target that stops answering fails the move.
    static let timeout: Duration = .seconds(30)

    func run(to endpoint: ServiceEndpoint) -> Outcome {
        var commitSent = false
        let socket: MigrationSocket
        self.phaseStarted = ContinuousClock.now
        do {
            socket = try MigrationSocket.connect(to: endpoint, timeout: Self.timeout)
            self.timed("connect")
        } catch {
            return .failed(error, commitSent: false)
        }
        defer {
            self.bytesSent = socket.bytesSent
            socket.close()
        }
        do {
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

            var checksum: UInt32 = 0
            try self.task.withHeldMemory { memory in
                var hashed = 0
                try socket.send(.memory, from: memory) { sent in
                    // The checksum runs behind the sending, chunk by chunk, on the same pass.
                    checksum = ferry_crc32c(checksum, memory.baseAddress! + hashed, sent - hashed)
                    hashed = sent
                    self.progress(sent, memory.count)
                }
            }
            self.timed("memory")
            HandoverPhase.reached(.memorySent, on: .source)

            self.state.memoryChecksum = checksum
            let tail = self.log.tail()
            self.state.logBase = tail.base
            self.state.log = tail.bytes
            let snapshot = self.snapshot.serialized()
            let extra = Array(try JSONEncoder().encode(self.state))
            try socket.send(.state, Self.lengthPrefixed(snapshot) + extra)
            self.timed("state")
            HandoverPhase.reached(.stateSent, on: .source)

            try socket.send(.commit)
            commitSent = true
            HandoverPhase.reached(.commit, on: .source)
            let (answer, body) = try socket.receive(.committed, .refuse)
            if answer == .refuse {
                let refusal = try? JSONDecoder().decode(MoveRefusal.self, from: Data(body))
                // Refused at the commit: the target holds nothing, the claim is still ours.
                commitSent = false
                throw MigrationError.refused(refusal?.reason ?? "no reason given")
            }
            let committed = try JSONDecoder().decode(MoveCommitted.self, from: Data(body))
            self.timed("commit")
            try? socket.send(.released)
            return .committed(committed)
        } catch {
            return .failed(error, commitSent: commitSent)
        }
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

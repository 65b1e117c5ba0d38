import FerryGuest
import FerryServer
import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix

/// The control socket of a running guest (`ferry guest run --control PATH`), on a
/// ``ControlSocket``:
///
///     checkpoint stop|leave-running PATH
///
/// asks for the guest's execution state at its next `ferry.checkpoint`, written to PATH; the
/// guest then stops there (to be restored elsewhere: migration) or carries on. The answer is
/// `ok checkpointed into PATH (N bytes)` or `error: ...`.
final class GuestControl: @unchecked Sendable {
    // Sendable: `pending`, `closed` and `socket` are guarded by `lock`.
    struct Request {
        var path: String
        var leaveRunning: Bool
        var answer: EventLoopPromise<String>
    }

    let path: String
    private let lock = NIOLock()
    private var socket: ControlSocket?
    private var pending: Request?
    private var closed = false

    private init(path: String) { self.path = path }

    static func listen(at path: String) async throws -> GuestControl {
        let control = GuestControl(path: path)
        let socket = try await ControlSocket.listen(at: path) { line, answer in control.submit(line, answer: answer) }
        control.lock.withLock { control.socket = socket }
        return control
    }

    /// Whether a checkpoint is wanted: asked at each of the guest's checkpoint calls.
    var isRequested: Bool { self.lock.withLock { self.pending != nil } }

    /// The request a checkpoint was just taken for.
    func take() -> Request? {
        self.lock.withLock {
            defer { self.pending = nil }
            return self.pending
        }
    }

    /// Answers any waiting request with `reason`, refuses later ones, and removes the socket.
    func close(_ reason: String) {
        let waiting = self.lock.withLock {
            self.closed = true
            defer { self.pending = nil }
            return self.pending
        }
        waiting?.answer.succeed("error: \(reason)")
        self.lock.withLock({ self.socket })?.close()
    }

    private func submit(_ line: String, answer: EventLoopPromise<String>) {
        let words = line.split(separator: " ", maxSplits: 2).map(String.init)
        guard words.count == 3, words[0] == "checkpoint", ["stop", "leave-running"].contains(words[1]) else {
            answer.succeed("error: unknown request '\(line)'; send: checkpoint stop|leave-running PATH")
            return
        }
        let refusal: String? = self.lock.withLock {
            if self.closed { return "the guest has finished" }
            if self.pending != nil { return "a checkpoint is already being taken" }
            self.pending = Request(path: words[2], leaveRunning: words[1] == "leave-running", answer: answer)
            return nil
        }
        if let refusal { answer.succeed("error: \(refusal)") }
    }

    /// Sends one request line to the guest's control socket at `path` and returns the answer.
    static func request(_ line: String, at path: String) async throws -> String {
        try await ControlSocket.request(line, at: path, runningCommand: "ferry guest run --control \(path)")
    }
}

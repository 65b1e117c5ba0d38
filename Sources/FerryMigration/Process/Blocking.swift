import Foundation

/// Bridges between threads that may block (a guest's kernel thread, a move's socket thread) and
/// async code, without blocking a thread of the cooperative pool.
enum Blocking {
    /// Runs blocking work (socket I/O) on a thread of its own and awaits it.
    static func run<Result: Sendable>(_ body: @escaping @Sendable () -> Result) async -> Result {
        await withCheckedContinuation { continuation in
            let thread = Thread { continuation.resume(returning: body()) }
            thread.name = "ferry-move"
            thread.stackSize = 1 << 20
            thread.start()
        }
    }

    /// Runs async work from a thread that may block (never a cooperative one), and waits for it.
    static func wait<Result: Sendable>(_ body: @escaping @Sendable () async throws -> Result) throws -> Result {
        let box = ResultBox<Result>()
        Task {
            let result: Swift.Result<Result, any Error>
            do { result = .success(try await body()) } catch { result = .failure(error) }
            box.set(result)
        }
        return try box.take().get()
    }
}

/// One value handed from a task to a waiting thread.
private final class ResultBox<Value: Sendable>: @unchecked Sendable {
    private let condition = NSCondition()
    private var value: Result<Value, any Error>?

    func set(_ value: Result<Value, any Error>) {
        self.condition.lock()
        self.value = value
        self.condition.signal()
        self.condition.unlock()
    }

    func take() -> Result<Value, any Error> {
        self.condition.lock()
        defer { self.condition.unlock() }
        while self.value == nil { self.condition.wait() }
        return self.value!
    }
}

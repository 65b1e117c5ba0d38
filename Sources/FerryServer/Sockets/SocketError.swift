import CFerryLinux

#if canImport(Glibc)
import Glibc
#endif

/// A failed system call on a socket, with what was being done and the system's reason.
public struct SocketError: Error, CustomStringConvertible {
    public var description: String

    /// An error for the failed `operation`, with `errno`'s text.
    static func system(_ operation: String, errno code: Int32 = errno) -> SocketError {
        SocketError(description: "\(operation): \(String(cString: strerror(code)))")
    }

    /// The write was stopped because its request was cancelled.
    static let cancelled = SocketError(description: "cancelled")
}

/// Starts a kernel thread, outside Swift concurrency's pool, running `body`.
///
/// - Returns: the thread, to be joined; `nil` for a detached thread.
/// - Throws: ``SocketError`` when the system refuses another thread.
@discardableResult
func startThread(name: String, detached: Bool = false, _ body: @escaping @Sendable () -> Void) throws -> pthread_t? {
    final class Box: @unchecked Sendable {
        let body: @Sendable () -> Void
        init(_ body: @escaping @Sendable () -> Void) { self.body = body }
    }
    let box = Unmanaged.passRetained(
        Box({
            ferry_set_thread_name(name)
            body()
        })
    ).toOpaque()
    var thread = pthread_t()
    let result = pthread_create(
        &thread,
        nil,
        { raw in
            let box = Unmanaged<AnyObject>.fromOpaque(raw!).takeRetainedValue() as! Box
            box.body()
            return nil
        },
        box
    )
    guard result == 0 else {
        Unmanaged<AnyObject>.fromOpaque(box).release()
        throw SocketError.system("cannot start thread \(name)", errno: result)
    }
    // A detached thread frees its stack when it ends; an undetached one waits to be joined.
    if detached {
        pthread_detach(thread)
        return nil
    }
    return thread
}

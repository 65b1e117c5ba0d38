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

/// Starts a detached-from-Swift-concurrency kernel thread running `body`.
func startThread(name: String, _ body: @escaping @Sendable () -> Void) -> pthread_t {
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
    precondition(result == 0, "pthread_create failed: \(String(cString: strerror(result)))")
    return thread
}

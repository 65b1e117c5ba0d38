import CFerryLinux

#if canImport(Glibc)
import Glibc
#endif

/// A kernel thread outside Swift concurrency's pool, for loops that block in the kernel
/// (epoll_wait, accept, recvmsg) and must not hold a cooperative thread while they do.
public struct KernelThread: Sendable {
    private let thread: pthread_t

    /// Starts `body` on a new thread named `name` (as `top` and `perf` show it), to be joined.
    /// - Throws: ``PosixError`` when the system refuses another thread.
    public static func start(name: String, _ body: @escaping @Sendable () -> Void) throws(PosixError) -> KernelThread {
        KernelThread(thread: try Self.create(name: name, body))
    }

    /// Starts `body` on a new thread that frees its stack when it ends, never joined.
    public static func detach(name: String, _ body: @escaping @Sendable () -> Void) throws(PosixError) {
        pthread_detach(try Self.create(name: name, body))
    }

    /// Waits for the thread to end.
    public func join() {
        pthread_join(self.thread, nil)
    }

    /// Lets the thread free its stack when it ends, for a thread nobody will join.
    public func detach() {
        pthread_detach(self.thread)
    }

    private final class Body: Sendable {
        let run: @Sendable () -> Void
        init(_ run: @escaping @Sendable () -> Void) { self.run = run }
    }

    private static func create(name: String, _ body: @escaping @Sendable () -> Void) throws(PosixError) -> pthread_t {
        let box = Unmanaged.passRetained(
            Body {
                ferry_set_thread_name(name)
                body()
            }
        ).toOpaque()
        var thread = pthread_t()
        let result = pthread_create(
            &thread,
            nil,
            { raw in
                Unmanaged<Body>.fromOpaque(raw!).takeRetainedValue().run()
                return nil
            },
            box
        )
        guard result == 0 else {
            Unmanaged<Body>.fromOpaque(box).release()
            throw PosixError.system("cannot start thread \(name)", errno: result)
        }
        return thread
    }
}

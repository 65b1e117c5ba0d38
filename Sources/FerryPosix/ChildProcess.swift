import CFerryLinux

#if canImport(Glibc)
import Glibc
#endif

/// A program started with posix_spawn: its standard streams from descriptors of ours, every other
/// descriptor closed in it, its signals at their defaults.
///
/// Foundation's `Process` is not used to start programs: on Linux its `run()` scans
/// `/proc/self/fd` with a 256-byte over-read of each entry, which crashes a process holding many
/// descriptors now and then (swift-corelibs-foundation #5472, in Swift 6.3).
public final class ChildProcess: Sendable {
    public let pid: pid_t
    private let exit = ExitStatus()

    /// Starts `executable` with `arguments` (after its own name) and `environment` (nil: ours).
    /// Standard input, output and error are the given descriptors (nil: ours); the caller closes
    /// its own copies. A thread of its own reaps the child the moment it ends, as Foundation's
    /// `Process` does: no zombie is left to look alive to `kill(pid, 0)`.
    public init(
        _ executable: String,
        _ arguments: [String],
        environment: [String: String]? = nil,
        standardInput: Int32? = nil,
        standardOutput: Int32? = nil,
        standardError: Int32? = nil
    ) throws {
        let environment = environment.map { $0.map { "\($0.key)=\($0.value)" } } ?? Self.ownEnvironment()
        var pid: pid_t = 0
        let result = withCStrings([executable] + arguments) { argv in
            withCStrings(environment) { envp in
                ferry_spawn_child(
                    executable,
                    argv,
                    envp,
                    standardInput ?? -1,
                    standardOutput ?? -1,
                    standardError ?? -1,
                    &pid
                )
            }
        }
        guard result == 0 else { throw PosixError.system("cannot start \(executable)", errno: result) }
        self.pid = pid
        let exit = self.exit
        let child = pid
        try KernelThread.detach(name: "ferry-reap-\(child)") {
            var raw: Int32 = 0
            while waitpid(child, &raw, 0) < 0 {
                guard errno == EINTR else {
                    raw = -1
                    break
                }
            }
            exit.set(raw)
        }
    }

    /// Sends `signal`, unless the child has ended (its pid may be someone else's then).
    public func signal(_ signal: Int32) {
        self.exit.unlessEnded { _ = kill(self.pid, signal) }
    }

    /// Whether it has not ended yet.
    public var isRunning: Bool { self.exit.status == nil }

    /// How a program ended.
    public enum Termination: Equatable, Sendable {
        case exited(Int32)
        case signalled(Int32)

        /// The exit code, or 128 + the signal (as a shell says).
        public var code: Int32 {
            switch self {
            case .exited(let code): code
            case .signalled(let signal): 128 + signal
            }
        }
    }

    /// Waits for it to end.
    @discardableResult
    public func wait() -> Termination {
        let status = self.exit.wait()
        guard status >= 0 else { return .exited(-1) }
        let signal = status & 0x7F
        return signal == 0 ? .exited((status >> 8) & 0xFF) : .signalled(signal)
    }

    private static func ownEnvironment() -> [String] {
        var entries: [String] = []
        var cursor = environ
        while let entry = cursor.pointee {
            entries.append(String(cString: entry))
            cursor += 1
        }
        return entries
    }
}

/// A child's wait status, set once by its reaper thread, waited for by anyone.
private final class ExitStatus: @unchecked Sendable {
    // Sendable: every field is used under the mutex.
    private var mutex = pthread_mutex_t()
    private var ended = pthread_cond_t()
    private var value: Int32?

    init() {
        pthread_mutex_init(&self.mutex, nil)
        pthread_cond_init(&self.ended, nil)
    }

    deinit {
        pthread_cond_destroy(&self.ended)
        pthread_mutex_destroy(&self.mutex)
    }

    var status: Int32? {
        pthread_mutex_lock(&self.mutex)
        defer { pthread_mutex_unlock(&self.mutex) }
        return self.value
    }

    func set(_ status: Int32) {
        pthread_mutex_lock(&self.mutex)
        self.value = status
        pthread_cond_broadcast(&self.ended)
        pthread_mutex_unlock(&self.mutex)
    }

    /// Runs `body` while the child is known not to have been reaped (so its pid is still its own).
    func unlessEnded(_ body: () -> Void) {
        pthread_mutex_lock(&self.mutex)
        defer { pthread_mutex_unlock(&self.mutex) }
        if self.value == nil { body() }
    }

    func wait() -> Int32 {
        pthread_mutex_lock(&self.mutex)
        defer { pthread_mutex_unlock(&self.mutex) }
        while self.value == nil { pthread_cond_wait(&self.ended, &self.mutex) }
        return self.value!
    }
}

/// Calls `body` with a NULL-terminated C array of `strings`.
public func withCStrings<Result>(
    _ strings: [String],
    _ body: (UnsafePointer<UnsafeMutablePointer<CChar>?>) -> Result
) -> Result {
    var pointers: [UnsafeMutablePointer<CChar>?] = strings.map { strdup($0) }
    pointers.append(nil)
    defer { for pointer in pointers { free(pointer) } }
    return pointers.withUnsafeBufferPointer { body($0.baseAddress!) }
}

import CFerryLinux
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// A program started with posix_spawn: its standard streams from descriptors of ours, every other
/// descriptor closed in it, its signals at their defaults.
///
/// Foundation's `Process` is not used to start programs: on Linux its `run()` scans
/// `/proc/self/fd` with a 256-byte over-read of each entry, which crashes a process holding many
/// descriptors now and then (swift-corelibs-foundation #5472, in Swift 6.3).
public final class ChildProcess: @unchecked Sendable {
    // Sendable: the pid is fixed; the wait status is written once, by whoever reaps, under the mutex.
    public let pid: pid_t
    private let status = Mutex<Int32?>(nil)

    /// Starts `executable` with `arguments` (after its own name) and `environment` (nil: ours).
    /// Standard input, output and error are the given descriptors (nil: ours); the caller closes
    /// its own copies.
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
    }

    /// Sends `signal`, unless the child was reaped already (its pid may be someone else's then).
    public func signal(_ signal: Int32) {
        self.status.withLock { status in if status == nil { _ = kill(self.pid, signal) } }
    }

    /// Whether it has not ended yet.
    public var isRunning: Bool {
        self.status.withLock { status in
            guard status == nil else { return false }
            var raw: Int32 = 0
            switch waitpid(self.pid, &raw, WNOHANG) {
            case self.pid:
                status = raw
                return false
            case 0: return true
            default:
                // Not our child any more (reaped elsewhere): it has ended, how is not known.
                status = -1
                return false
            }
        }
    }

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
        var raw: Int32 = 0
        while true {
            if let status = self.status.withLock({ $0 }) { return Self.code(status) }
            let reaped = waitpid(self.pid, &raw, 0)
            if reaped == self.pid {
                self.status.withLock { $0 = raw }
            } else if reaped < 0 && errno != EINTR {
                // Reaped by isRunning on another thread meanwhile.
                return self.status.withLock { $0.map(Self.code) } ?? .exited(-1)
            }
        }
    }

    private static func code(_ status: Int32) -> Termination {
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

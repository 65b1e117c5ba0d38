#if canImport(Glibc)
import Glibc
#endif

/// A failed system call: what was being done, and the system's reason.
public struct PosixError: Error, Equatable, Sendable, CustomStringConvertible {
    /// What was being done, naming its input ("cannot listen on 127.0.0.1:80").
    public let operation: String
    /// The system's words for what went wrong (`strerror`).
    public let reason: String

    public init(_ operation: String, reason: String) {
        self.operation = operation
        self.reason = reason
    }

    /// The error for the failed `operation`, with `errno`'s text.
    public static func system(_ operation: String, errno code: Int32 = errno) -> PosixError {
        PosixError(operation, reason: String(cString: strerror(code)))
    }

    public var description: String { "\(self.operation): \(self.reason)" }
}

import Logging

#if canImport(Glibc)
import Glibc
#endif

public enum TestLog {
    /// `FERRY_TEST_LOG=debug swift test` shows the servers' logs.
    public static var level: Logger.Level {
        getenv("FERRY_TEST_LOG").flatMap { Logger.Level(rawValue: String(cString: $0)) } ?? .warning
    }

    /// A logger at ``level``, labelled `label`.
    public static func logger(_ label: String = "test") -> Logger {
        var logger = Logger(label: label)
        logger.logLevel = Self.level
        return logger
    }
}

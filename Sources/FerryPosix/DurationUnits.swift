/// `Duration` in the units protocols and system calls take. Swift spells a duration as seconds
/// plus attoseconds; these are the one place that arithmetic is written.
extension Duration {
    /// The longest duration a flag or a configuration file may give in seconds: a year.
    public static let longestSeconds: Double = 31_536_000

    /// `seconds` to the millisecond (rounded up) when it is above 0 and at most `limit`; `nil` for
    /// zero, negative, infinite, NaN or longer, which as a duration would trap or mean nothing.
    public init?(positiveSeconds seconds: Double, atMost limit: Double = Duration.longestSeconds) {
        guard seconds.isFinite, seconds > 0, seconds <= limit else { return nil }
        self = .milliseconds(Int64((seconds * 1000).rounded(.up)))
    }

    /// Whole nanoseconds (negative durations count as zero).
    public var wholeNanoseconds: UInt64 {
        let (seconds, attoseconds) = self.components
        guard seconds >= 0, attoseconds >= 0 else { return 0 }
        return UInt64(seconds) * 1_000_000_000 + UInt64(attoseconds / 1_000_000_000)
    }

    /// Whole microseconds.
    public var wholeMicroseconds: Int64 {
        let (seconds, attoseconds) = self.components
        return seconds * 1_000_000 + attoseconds / 1_000_000_000_000
    }

    /// Whole milliseconds.
    public var wholeMilliseconds: Int64 {
        let (seconds, attoseconds) = self.components
        return seconds * 1000 + attoseconds / 1_000_000_000_000_000
    }

    /// Seconds as a floating-point number.
    public var inSeconds: Double {
        Double(self.components.seconds) + Double(self.components.attoseconds) / 1e18
    }
}

/// A single `Range: bytes=...` request (RFC 9110 §14.1.2).
public enum ByteRange: Equatable, Sendable {
    /// No usable Range header: serve the whole file. Multiple ranges land here too, which the RFC allows.
    case none
    case unsatisfiable
    case range(Range<Int>)

    public static func parse(_ header: String?, size: Int) -> ByteRange {
        guard let header, header.hasPrefix("bytes=") else { return .none }
        let spec = String(header.dropFirst("bytes=".count)).trimmingCharacters(in: " ")
        guard !spec.contains(",") else { return .none }
        let bounds = spec.split(separator: "-", maxSplits: 1, omittingEmptySubsequences: false)
        guard bounds.count == 2 else { return .none }
        switch (Int(bounds[0]), Int(bounds[1])) {
        case (nil, let suffix?) where bounds[0].isEmpty:
            guard suffix > 0, size > 0 else { return .unsatisfiable }
            return .range(max(0, size - suffix)..<size)
        case (let first?, nil) where bounds[1].isEmpty:
            guard first < size else { return .unsatisfiable }
            return .range(first..<size)
        case (let first?, let last?):
            guard first <= last else { return .none }
            guard first < size else { return .unsatisfiable }
            // `last` may be any number a client writes: cap it before adding one.
            return .range(first..<(min(last, size - 1) + 1))
        default:
            return .none
        }
    }
}

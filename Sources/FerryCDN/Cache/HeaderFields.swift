import FerryHTTP

/// Lookups over header fields given as `[(name:, value:)]`. Names compare ASCII case-insensitively
/// byte by byte, so the per-request path neither allocates nor needs Foundation.
enum HeaderFields {
    typealias Fields = [(name: String, value: String)]

    /// Whether `name` equals `lowercased` (which must already be lowercase ASCII), ignoring case.
    static func name(_ name: String, is lowercased: String) -> Bool {
        guard name.utf8.count == lowercased.utf8.count else { return false }
        for (byte, expected) in zip(name.utf8, lowercased.utf8) where byte.asciiLowercased != expected {
            return false
        }
        return true
    }

    /// Every value of the fields named `lowercased`, in order. Any sequence of fields (NIO's
    /// `HTTPHeaders` too), so a request's fields are read where they are, not copied first.
    static func values(_ lowercased: String, in fields: some Sequence<(name: String, value: String)>) -> [String] {
        var values: [String] = []
        for field in fields where name(field.name, is: lowercased) {
            values.append(field.value)
        }
        return values
    }

    /// The value of the first field named `lowercased`.
    static func first(_ lowercased: String, in fields: some Sequence<(name: String, value: String)>) -> String? {
        for field in fields where name(field.name, is: lowercased) {
            return field.value
        }
        return nil
    }

    static func contains(_ lowercased: String, in fields: some Sequence<(name: String, value: String)>) -> Bool {
        first(lowercased, in: fields) != nil
    }

    /// Fields that belong to one connection and never travel on (RFC 9110 §7.6.1), lowercased.
    static let hopByHop: Set<String> = [
        "connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade",
        "proxy-authenticate", "proxy-authorization", "proxy-authentication-info",
    ]

    /// The hop-by-hop fields of `fields`: the standard ones and those its Connection field names.
    static func hopByHop(in fields: some Sequence<(name: String, value: String)>) -> Set<String> {
        hopByHop.union(listElements(values("connection", in: fields)).map(lowercased))
    }

    /// The elements of a comma-separated list (RFC 9110 §5.6.1) across all `values`: trimmed of
    /// optional whitespace, empty elements dropped, commas inside quoted strings kept.
    static func listElements(_ values: [String]) -> [String] {
        var elements: [String] = []
        for value in values {
            listElements(value) { elements.append($0) }
        }
        return elements
    }

    static func listElements(_ value: String, _ body: (String) -> Void) {
        let bytes = value.utf8
        var start = bytes.startIndex
        var index = bytes.startIndex
        var inQuotes = false
        var escaped = false
        while index < bytes.endIndex {
            let byte = bytes[index]
            if escaped {
                escaped = false
            } else if inQuotes {
                if byte == UInt8(ascii: "\\") {
                    escaped = true
                } else if byte == UInt8(ascii: "\"") {
                    inQuotes = false
                }
            } else if byte == UInt8(ascii: "\"") {
                inQuotes = true
            } else if byte == UInt8(ascii: ",") {
                emit(bytes[start..<index], body)
                start = bytes.index(after: index)
            }
            index = bytes.index(after: index)
        }
        emit(bytes[start..<index], body)
    }

    private static func emit(_ slice: Substring.UTF8View, _ body: (String) -> Void) {
        let trimmed = trimmingWhitespace(slice)
        if !trimmed.isEmpty { body(String(decoding: trimmed, as: UTF8.self)) }
    }

    static func trimmingWhitespace<Bytes: BidirectionalCollection<UInt8>>(
        _ bytes: Bytes
    ) -> Bytes.SubSequence {
        var start = bytes.startIndex
        var end = bytes.endIndex
        while start < end, isWhitespace(bytes[start]) { start = bytes.index(after: start) }
        while end > start, isWhitespace(bytes[bytes.index(before: end)]) { end = bytes.index(before: end) }
        return bytes[start..<end]
    }

    static func trimmed(_ text: String) -> String {
        String(decoding: trimmingWhitespace(text.utf8), as: UTF8.self)
    }

    /// ASCII-lowercases `text`; other bytes (there should be none in a field name) are kept.
    static func lowercased(_ text: String) -> String {
        guard text.utf8.contains(where: { $0 >= UInt8(ascii: "A") && $0 <= UInt8(ascii: "Z") }) else { return text }
        return String(decoding: text.utf8.map(\.asciiLowercased), as: UTF8.self)
    }

    static func isWhitespace(_ byte: UInt8) -> Bool {
        byte == UInt8(ascii: " ") || byte == UInt8(ascii: "\t")
    }

    /// A non-negative decimal integer (RFC 9111 §1.2.2 delta-seconds); values past 2^31 are
    /// clamped to 2^31 as the RFC asks, so a huge number stays a huge lifetime, not an error.
    static func deltaSeconds(_ text: String) -> Int? {
        let digits = trimmingWhitespace(text.utf8)
        guard !digits.isEmpty else { return nil }
        var value = 0
        for byte in digits {
            guard byte >= UInt8(ascii: "0"), byte <= UInt8(ascii: "9") else { return nil }
            value = min(value * 10 + Int(byte - UInt8(ascii: "0")), deltaSecondsLimit)
        }
        return value
    }

    static let deltaSecondsLimit = 2_147_483_648
}

/// The secondary cache key (RFC 9111 §4.1): the request's values of the fields a stored response's
/// `Vary` names. A stored variant answers a request iff the request's key, computed with the stored
/// variant's fields, equals the variant's own key.
///
/// Normalisation, so that trivially different spellings share a variant: field names are lowercased,
/// deduplicated and sorted; a field's lines are combined into one list whose elements are trimmed,
/// runs of whitespace collapsed to one space and whitespace next to `;` dropped (outside quoted strings),
/// and empty elements removed. Values keep their case. A missing field (nil) differs from an empty one.
public struct VaryKey: Sendable, Hashable, CustomStringConvertible {
    /// Lowercased, sorted, unique field names from `Vary`.
    public let fields: [String]
    /// The request's normalised value for each of `fields`; nil when the request lacks the field.
    public let values: [String?]

    /// The key of a response without `Vary`: it matches every request.
    public static let none = VaryKey(fields: [], values: [])

    init(fields: [String], values: [String?]) {
        self.fields = fields
        self.values = values
    }

    /// The key for `requestHeaders` under the field names of a `Vary` header (in any case or order).
    public init(varyFields: [String], requestHeaders: [(name: String, value: String)]) {
        self.init(normalisedFields: Self.normalise(fields: varyFields), requestHeaders: requestHeaders)
    }

    /// The key a response carrying `responseHeaders` gets when it answers `requestHeaders`.
    public init(responseHeaders: [(name: String, value: String)], requestHeaders: [(name: String, value: String)]) {
        self.init(varyFields: Self.fields(ofVary: responseHeaders), requestHeaders: requestHeaders)
    }

    /// `fields` must already be lowercased, sorted and unique (the fields of a stored key).
    init(normalisedFields fields: [String], requestHeaders: some Sequence<(name: String, value: String)>) {
        self.fields = fields
        self.values = fields.map { field in
            let lines = HeaderFields.values(field, in: requestHeaders)
            guard !lines.isEmpty else { return nil }
            return HeaderFields.listElements(lines).map(Self.normalise(element:)).joined(separator: ",")
        }
    }

    /// Whether the response said `Vary: *`: it can never be reused (§4.1), so it matches nothing.
    public var isWildcard: Bool { self.fields.contains("*") }

    /// The field names listed by all `Vary` lines, lowercased, sorted and unique.
    public static func fields(ofVary headers: [(name: String, value: String)]) -> [String] {
        normalise(fields: HeaderFields.listElements(HeaderFields.values("vary", in: headers)))
    }

    /// Whether a request with `requestHeaders` may be answered by the variant with this key.
    public func matches(requestHeaders: some Sequence<(name: String, value: String)>) -> Bool {
        guard !self.isWildcard else { return false }
        guard !self.fields.isEmpty else { return true }
        return VaryKey(normalisedFields: self.fields, requestHeaders: requestHeaders) == self
    }

    /// A stable, unambiguous text form (`name=value` or `name!` for a missing field, one per line),
    /// used for logs and to name disk files.
    public var description: String {
        var text = ""
        for (field, value) in zip(self.fields, self.values) {
            text += field
            if let value {
                text += "=" + value
            } else {
                text += "!"
            }
            text += "\n"
        }
        return text
    }

    static func normalise(fields: [String]) -> [String] {
        Array(Set(fields.map { HeaderFields.lowercased(HeaderFields.trimmed($0)) }).subtracting([""])).sorted()
    }

    /// One list element with whitespace runs collapsed and whitespace around `;` removed, outside
    /// quoted strings (the element is already trimmed at both ends).
    static func normalise(element: String) -> String {
        var output: [UInt8] = []
        output.reserveCapacity(element.utf8.count)
        var pendingSpace = false
        var inQuotes = false
        var escaped = false
        for byte in element.utf8 {
            if inQuotes {
                output.append(byte)
                if escaped {
                    escaped = false
                } else if byte == UInt8(ascii: "\\") {
                    escaped = true
                } else if byte == UInt8(ascii: "\"") {
                    inQuotes = false
                }
                continue
            }
            if HeaderFields.isWhitespace(byte) {
                pendingSpace = true
                continue
            }
            if pendingSpace, byte != UInt8(ascii: ";"), output.last != UInt8(ascii: ";") {
                output.append(UInt8(ascii: " "))
            }
            pendingSpace = false
            output.append(byte)
            if byte == UInt8(ascii: "\"") { inQuotes = true }
        }
        return String(decoding: output, as: UTF8.self)
    }
}

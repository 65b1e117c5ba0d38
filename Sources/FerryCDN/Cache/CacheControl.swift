/// The `Cache-Control` directives of one message (RFC 9111 §5.2, RFC 5861), as a shared cache reads them.
///
/// All `Cache-Control` field lines are combined. Directive names are case-insensitive, arguments may be
/// tokens or quoted strings (recipients accept both forms, §5.2), and unknown directives are ignored.
/// When a directive repeats with different arguments, the most restrictive (smallest) one wins.
public struct CacheControl: Sendable, Equatable {
    /// `max-age`, seconds. An argument that is not delta-seconds counts as 0: §4.2.1 encourages
    /// treating invalid freshness information as stale.
    public var maxAge: Int?
    /// `s-maxage`, seconds; overrides `max-age` and `Expires` for a shared cache. Invalid counts as 0.
    public var sMaxAge: Int?
    public var noStore = false
    /// `no-cache`; the qualified form (`no-cache="Set-Cookie"`) is treated as unqualified, as §5.2.2.4
    /// allows, because this cache does not serve a response with fields stripped.
    public var noCache = false
    /// `private`, with or without field names: a shared cache never stores any of the response.
    public var isPrivate = false
    public var isPublic = false
    public var mustRevalidate = false
    public var proxyRevalidate = false
    /// RFC 5861: seconds a stale response may be served while it is revalidated in the background.
    /// An invalid argument is ignored (no stale serving), the restrictive reading.
    public var staleWhileRevalidate: Int?
    /// RFC 5861: seconds a stale response may be served when the origin fails. Invalid is ignored.
    public var staleIfError: Int?
    /// RFC 8246; it changes nothing for the origin-facing side of a shared cache, but the edge may use
    /// it to keep serving from cache when a client asks to reload.
    public var immutable = false

    public init() {}

    /// Parses every `Cache-Control` field line in `headers`.
    public init(headers: [(name: String, value: String)]) {
        self.init(values: HeaderFields.values("cache-control", in: headers))
    }

    /// Parses the given `Cache-Control` field values.
    public init(values: [String]) {
        self.init()
        for value in values {
            HeaderFields.listElements(value) { self.apply(directive: $0) }
        }
    }

    private mutating func apply(directive: String) {
        let name: String
        var argument: String?
        if let equals = directive.utf8.firstIndex(of: UInt8(ascii: "=")) {
            let nameBytes = HeaderFields.trimmingWhitespace(directive.utf8[directive.utf8.startIndex..<equals])
            name = HeaderFields.lowercased(String(decoding: nameBytes, as: UTF8.self))
            let rest = directive.utf8[directive.utf8.index(after: equals)...]
            argument = Self.unquote(String(decoding: HeaderFields.trimmingWhitespace(rest), as: UTF8.self))
        } else {
            name = HeaderFields.lowercased(directive)
        }
        switch name {
        case "max-age":
            self.maxAge = Self.smaller(self.maxAge, argument.flatMap(HeaderFields.deltaSeconds) ?? 0)
        case "s-maxage":
            self.sMaxAge = Self.smaller(self.sMaxAge, argument.flatMap(HeaderFields.deltaSeconds) ?? 0)
        case "stale-while-revalidate":
            if let seconds = argument.flatMap(HeaderFields.deltaSeconds) {
                self.staleWhileRevalidate = Self.smaller(self.staleWhileRevalidate, seconds)
            }
        case "stale-if-error":
            if let seconds = argument.flatMap(HeaderFields.deltaSeconds) {
                self.staleIfError = Self.smaller(self.staleIfError, seconds)
            }
        case "no-store": self.noStore = true
        case "no-cache": self.noCache = true
        case "private": self.isPrivate = true
        case "public": self.isPublic = true
        case "must-revalidate": self.mustRevalidate = true
        case "proxy-revalidate": self.proxyRevalidate = true
        case "immutable": self.immutable = true
        default: break
        }
    }

    private static func smaller(_ current: Int?, _ new: Int) -> Int {
        guard let current else { return new }
        return min(current, new)
    }

    /// The content of a quoted-string with its escapes undone; a token is returned as it is, and an
    /// unterminated quoted-string yields nil (an invalid argument).
    static func unquote(_ text: String) -> String? {
        guard text.utf8.first == UInt8(ascii: "\"") else { return text }
        var content: [UInt8] = []
        var escaped = false
        var closed = false
        for byte in text.utf8.dropFirst() {
            if closed { return nil }
            if escaped {
                content.append(byte)
                escaped = false
            } else if byte == UInt8(ascii: "\\") {
                escaped = true
            } else if byte == UInt8(ascii: "\"") {
                closed = true
            } else {
                content.append(byte)
            }
        }
        return closed ? String(decoding: content, as: UTF8.self) : nil
    }
}

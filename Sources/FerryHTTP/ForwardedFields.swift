import NIOCore

/// What a proxy must know of one message's header fields, gathered in one pass over the head's
/// raw bytes, and the fields it passes on: every line as it came but the hop-by-hop fields, which
/// describe one connection only. No field becomes a string unless the switch needs its value.
public struct ForwardedFields {
    public typealias Field = HTTPRequestParser.Field

    public var fields: [Field] = []
    public var contentLengthCount = 0
    /// The Content-Length, when there is one and it is a number.
    public var contentLength: UInt64?
    public var contentLengthIsNumber = true
    public var transferEncoding: [String] = []
    /// The Connection header's tokens other than close and keep-alive, lowercased: the names of
    /// more hop-by-hop fields. Content-Length, Transfer-Encoding and Host are never among them:
    /// the switch frames and routes the message by them, and a message that named them here and
    /// lost them on the way would reach the next hop framed otherwise (its body read there as a
    /// request of its own).
    public var connection: [String] = []
    public var connectionClose = false
    public var connectionKeepAlive = false
    public var hostValue: Range<Int>?
    public var forwardedFor: String?
    /// The client accepts trailers (`TE: trailers`). TE is hop-by-hop, but trailers pass through
    /// the switch untouched, so the switch asks its backend for them in turn.
    public var acceptsTrailers = false

    public init(
        _ head: UnsafeRawBufferPointer,
        from start: Int,
        parser: HTTPRequestParser
    ) throws(HTTPRequestParser.Error) {
        var fields: [Field] = []
        fields.reserveCapacity(16)
        try parser.scanFields(head, from: start) { fields.append($0) }
        self.fields = fields
        for field in fields {
            let name = UnsafeRawBufferPointer(rebasing: head[field.name])
            switch name.count {
            case 2 where Self.matches(name, "te"):
                self.acceptsTrailers =
                    self.acceptsTrailers || Self.text(head, field.value).lowercased().contains("trailers")
            case 4 where Self.matches(name, "host"):
                self.hostValue = self.hostValue ?? field.value
            case 10 where Self.matches(name, "connection"):
                // Token by token, in place: `split` would allocate an array for every answer.
                var tokenStart = field.value.lowerBound
                while tokenStart <= field.value.upperBound {
                    var tokenEnd = tokenStart
                    while tokenEnd < field.value.upperBound, head[tokenEnd] != UInt8(ascii: ",") { tokenEnd += 1 }
                    let token = UnsafeRawBufferPointer(rebasing: head[tokenStart..<tokenEnd]).trimmed
                    tokenStart = tokenEnd + 1
                    if Self.matches(token, "close") {
                        self.connectionClose = true
                    } else if Self.matches(token, "keep-alive") {
                        self.connectionKeepAlive = true
                    } else if !token.isEmpty, !Self.framesTheMessage(token) {
                        self.connection.append(String(decoding: token.map(\.asciiLowercased), as: UTF8.self))
                    }
                }
            case 14 where Self.matches(name, "content-length"):
                self.contentLengthCount += 1
                self.contentLength = Self.number(UnsafeRawBufferPointer(rebasing: head[field.value]))
                if self.contentLength == nil { self.contentLengthIsNumber = false }
            case 15 where Self.matches(name, "x-forwarded-for"):
                let value = Self.text(head, field.value)
                self.forwardedFor = self.forwardedFor.map { "\($0), \(value)" } ?? value
            case 17 where Self.matches(name, "transfer-encoding"):
                self.transferEncoding.append(Self.text(head, field.value))
            default:
                break
            }
        }
    }

    /// Whether the sender keeps its connection open after this message.
    public func keepAlive(minorVersion: Int) -> Bool {
        minorVersion == 1 ? !self.connectionClose : self.connectionKeepAlive
    }

    public var hasHost: Bool { self.hostValue != nil }

    /// The Host, lowercased, without its port.
    public func host(in head: UnsafeRawBufferPointer) -> String {
        guard let range = self.hostValue else { return "" }
        return (Self.text(head, range).split(separator: ":", maxSplits: 1).first ?? "").lowercased()
    }

    /// Whether the transfer coding's last step is chunked, as HTTP/1.1 requires of a coded body.
    public var endsChunked: Bool {
        let last = self.transferEncoding.last?.split(separator: ",").last
        return last.map { Self.trimmed($0).lowercased() == "chunked" } ?? false
    }

    /// Every value of the field `name` (lowercase), as strings: for the rules that look at one.
    public func values(_ name: String, in head: UnsafeRawBufferPointer) -> [String] {
        self.fields.filter { Self.matches(UnsafeRawBufferPointer(rebasing: head[$0.name]), lowercased: name) }.map {
            Self.text(head, $0.value)
        }
    }

    /// Writes every field to pass on, line by line as it came, leaving out hop-by-hop fields and,
    /// when asked, X-Forwarded-For (which the caller writes itself, extended). Lines that lie
    /// next to each other in the head go in one copy. At most `head.count` bytes.
    public func writePassedOn(_ head: UnsafeRawBufferPointer, to out: inout HeadWriter, exceptForwardedFor: Bool) {
        var run = 0..<0
        for field in self.fields {
            let name = UnsafeRawBufferPointer(rebasing: head[field.name])
            if self.isHopByHop(name) || (exceptForwardedFor && Self.matches(name, "x-forwarded-for")) { continue }
            // The line with its CRLF: the head's bytes, ending at the CRLF CRLF taken off it.
            let line = field.line.lowerBound..<field.line.upperBound + 2
            if line.lowerBound == run.upperBound {
                run = run.lowerBound..<line.upperBound
            } else {
                Self.writeLines(head, run, to: &out)
                run = line
            }
        }
        Self.writeLines(head, run, to: &out)
    }

    /// Writes lines of the head with their CRLFs; the last field's CRLF is not in `head` (it ends
    /// at the head's final CRLF CRLF), so that one is written apart.
    private static func writeLines(_ head: UnsafeRawBufferPointer, _ lines: Range<Int>, to out: inout HeadWriter) {
        guard !lines.isEmpty else { return }
        out.write(UnsafeRawBufferPointer(rebasing: head[lines.lowerBound..<min(lines.upperBound, head.count)]))
        if lines.upperBound > head.count { out.write("\r\n") }
    }

    private func isHopByHop(_ name: UnsafeRawBufferPointer) -> Bool {
        switch name.count {
        case 2: if Self.matches(name, "te") { return true }
        case 7: if Self.matches(name, "upgrade") || Self.matches(name, "trailer") { return true }
        case 10: if Self.matches(name, "connection") || Self.matches(name, "keep-alive") { return true }
        case 16: if Self.matches(name, "proxy-connection") { return true }
        default: break
        }
        guard !self.connection.isEmpty else { return false }
        return self.connection.contains { Self.matches(name, lowercased: $0) }
    }

    /// Whether the bytes of a field name (or a Connection token) are `lowercase`, in any case.
    /// `lowercase` holds letters, digits and `-` only, and for those `| 0x20` folds exactly: the
    /// other bytes it would fold onto them are control bytes, which no name or value holds.
    public static func matches(_ name: UnsafeRawBufferPointer, _ lowercase: StaticString) -> Bool {
        guard name.count == lowercase.utf8CodeUnitCount else { return false }
        let expected = lowercase.utf8Start
        for index in 0..<name.count where name[index] | 0x20 != expected[index] { return false }
        return true
    }

    /// `matches` for a name known only at run time (a rule's, or one the Connection header lists),
    /// which may hold any token byte.
    public static func matches(_ name: UnsafeRawBufferPointer, lowercased: String) -> Bool {
        guard name.count == lowercased.utf8.count else { return false }
        return zip(name, lowercased.utf8).allSatisfy { $0.asciiLowercased == $1 }
    }

    /// Whether a Connection token names a field the message's framing or routing rests on.
    private static func framesTheMessage(_ token: UnsafeRawBufferPointer) -> Bool {
        Self.matches(token, "content-length") || Self.matches(token, "transfer-encoding")
            || Self.matches(token, "host")
    }

    public static func trimmed(_ text: Substring) -> Substring {
        var text = text
        while let first = text.first, first == " " || first == "\t" { text = text.dropFirst() }
        while let last = text.last, last == " " || last == "\t" { text = text.dropLast() }
        return text
    }

    public static func text(_ head: UnsafeRawBufferPointer, _ range: Range<Int>) -> String {
        HTTPRequestParser.text(head, range)
    }

    /// A decimal number of at most 19 digits, or nil.
    public static func number(_ digits: UnsafeRawBufferPointer) -> UInt64? {
        guard !digits.isEmpty, digits.count <= 19 else { return nil }
        var value: UInt64 = 0
        for digit in digits {
            guard digit >= 48, digit <= 57 else { return nil }
            value = value * 10 + UInt64(digit - 48)
        }
        return value
    }
}

extension UnsafeRawBufferPointer {
    /// Without leading and trailing spaces and tabs.
    fileprivate var trimmed: UnsafeRawBufferPointer {
        var start = 0
        var end = self.count
        while start < end, self[start] == 32 || self[start] == 9 { start += 1 }
        while end > start, self[end - 1] == 32 || self[end - 1] == 9 { end -= 1 }
        return UnsafeRawBufferPointer(rebasing: self[start..<end])
    }
}

/// An IPv4 or IPv6 address as a number, so that masking and comparing are integer operations: the
/// redirector looks one up on every DNS query.
public enum IPAddress: Sendable, Hashable, CustomStringConvertible {
    case v4(UInt32)
    case v6(UInt128)

    /// `::ffff:0:0/96`, where IPv6 sockets and DNS Client Subnet options carry IPv4 clients.
    static let mappedPrefix: UInt128 = 0xffff << 32
    static let mappedMask: UInt128 = ~UInt128(UInt32.max)

    /// Parses a dotted quad (`192.0.2.1`) or RFC 4291 IPv6 text (`2001:db8::1`, `::ffff:192.0.2.1`).
    ///
    /// A decimal part with a leading zero is refused: `010` is 8 to `inet_aton` and 10 to others,
    /// and a coverage file should not mean two things. Zone indexes (`fe80::1%eth0`) are refused.
    public init?(_ text: some StringProtocol) {
        var text = String(text)
        let parsed: IPAddress? = text.withUTF8 { bytes in
            if bytes.contains(UInt8(ascii: ":")) {
                return IPv6Text.parse(bytes).map(IPAddress.v6)
            }
            return IPv4Text.parse(bytes[...]).map(IPAddress.v4)
        }
        guard let parsed else { return nil }
        self = parsed
    }

    /// An address from its network-order bytes: 4 for IPv4, 16 for IPv6, as in a sockaddr or the
    /// DNS Client Subnet option (whose address the caller pads to full length).
    public init?(bytes: some Collection<UInt8>) {
        switch bytes.count {
        case 4:
            self = .v4(bytes.reduce(0) { $0 << 8 | UInt32($1) })
        case 16:
            self = .v6(bytes.reduce(0) { $0 << 8 | UInt128($1) })
        default:
            return nil
        }
    }

    /// The address in network order: 4 or 16 bytes.
    public var bytes: [UInt8] {
        switch self {
        case .v4(let value):
            (0..<4).map { UInt8(truncatingIfNeeded: value >> (24 - 8 * $0)) }
        case .v6(let value):
            (0..<16).map { UInt8(truncatingIfNeeded: value >> (120 - 8 * $0)) }
        }
    }

    public var isIPv4: Bool {
        if case .v4 = self { return true }
        return false
    }

    /// Whether this is an IPv6 address in `::ffff:0:0/96`, which stands for an IPv4 client.
    public var isIPv4Mapped: Bool {
        if case .v6(let value) = self { return value & Self.mappedMask == Self.mappedPrefix }
        return false
    }

    /// The IPv4 address an IPv4-mapped IPv6 address stands for; any other address unchanged. Lookups
    /// match on this, so that a client reaching a dual-stack socket finds its IPv4 coverage zone.
    public var unmapped: IPAddress {
        if case .v6(let value) = self, value & Self.mappedMask == Self.mappedPrefix {
            return .v4(UInt32(truncatingIfNeeded: value))
        }
        return self
    }

    /// IPv6 in RFC 5952's canonical form: lowercase, no leading zeros, the longest run of two or more
    /// zero groups (the first of equals) as `::`, and IPv4-mapped addresses as `::ffff:192.0.2.1`.
    public var description: String {
        switch self {
        case .v4(let value):
            IPv4Text.format(value)
        case .v6(let value):
            IPv6Text.format(value)
        }
    }
}

/// Dotted-quad text.
enum IPv4Text {
    static func parse(_ bytes: Slice<UnsafeBufferPointer<UInt8>>) -> UInt32? {
        var value: UInt32 = 0
        var parts = 0
        var part: UInt32 = 0
        var digits = 0
        for byte in bytes {
            if byte == UInt8(ascii: ".") {
                guard digits > 0, parts < 3 else { return nil }
                value = value << 8 | part
                parts += 1
                part = 0
                digits = 0
            } else if byte >= UInt8(ascii: "0"), byte <= UInt8(ascii: "9") {
                // A leading zero is refused (see IPAddress.init); so are more than three digits.
                guard digits == 0 || part != 0, digits < 3 else { return nil }
                part = part * 10 + UInt32(byte - UInt8(ascii: "0"))
                guard part <= 255 else { return nil }
                digits += 1
            } else {
                return nil
            }
        }
        guard digits > 0, parts == 3 else { return nil }
        return value << 8 | part
    }

    static func format(_ value: UInt32) -> String {
        "\(value >> 24).\(value >> 16 & 0xff).\(value >> 8 & 0xff).\(value & 0xff)"
    }
}

/// RFC 4291 section 2.2 text: eight groups of up to four hex digits, one `::` for one or more
/// zero groups, and optionally a dotted quad for the last two groups.
enum IPv6Text {
    static func parse(_ bytes: UnsafeBufferPointer<UInt8>) -> UInt128? {
        var groups: [UInt16] = []
        groups.reserveCapacity(8)
        var gap: Int?  // the index in `groups` where `::` stands
        var index = 0
        let end = bytes.count
        if end >= 2, bytes[0] == UInt8(ascii: ":"), bytes[1] == UInt8(ascii: ":") {
            gap = 0
            index = 2
        }
        while index < end {
            let start = index
            var group: UInt16 = 0
            while index < end, index - start < 5, let digit = hexValue(bytes[index]) {
                group = group << 4 | UInt16(digit)
                index += 1
            }
            if index < end, bytes[index] == UInt8(ascii: ".") {
                // The dotted quad must come last and fill the last two groups.
                guard groups.count <= 6, let v4 = IPv4Text.parse(bytes[start..<end]) else { return nil }
                groups.append(UInt16(truncatingIfNeeded: v4 >> 16))
                groups.append(UInt16(truncatingIfNeeded: v4))
                index = end
                break
            }
            guard index > start, index - start <= 4, groups.count < 8 else { return nil }
            groups.append(group)
            if index == end { break }
            guard bytes[index] == UInt8(ascii: ":") else { return nil }
            index += 1
            if index < end, bytes[index] == UInt8(ascii: ":") {
                guard gap == nil else { return nil }
                gap = groups.count
                index += 1
            } else if index == end {
                return nil  // a single trailing colon
            }
        }
        if let gap {
            guard groups.count <= 7 else { return nil }
            groups.insert(contentsOf: repeatElement(0, count: 8 - groups.count), at: gap)
        }
        guard groups.count == 8 else { return nil }
        return groups.reduce(0) { $0 << 16 | UInt128($1) }
    }

    static func hexValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): byte - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): byte - UInt8(ascii: "A") + 10
        default: nil
        }
    }

    static func format(_ value: UInt128) -> String {
        if value & IPAddress.mappedMask == IPAddress.mappedPrefix {
            return "::ffff:" + IPv4Text.format(UInt32(truncatingIfNeeded: value))
        }
        let groups = (0..<8).map { UInt16(truncatingIfNeeded: value >> (112 - 16 * $0)) }
        // The longest run of zero groups, at least two long; the first of equally long runs.
        var best = (start: -1, length: 1)
        var run = (start: 0, length: 0)
        for (index, group) in groups.enumerated() {
            if group == 0 {
                if run.length == 0 { run.start = index }
                run.length += 1
                if run.length > best.length { best = run }
            } else {
                run.length = 0
            }
        }
        func hex(_ range: Range<Int>) -> String {
            groups[range].map { String($0, radix: 16) }.joined(separator: ":")
        }
        guard best.start >= 0 else { return hex(0..<8) }
        return hex(0..<best.start) + "::" + hex((best.start + best.length)..<8)
    }
}

/// A domain name, kept in uncompressed wire form so that encoding is a copy and comparing needs no allocation.
///
/// The original case is kept, because answers must echo the question's case (resolvers using 0x20 mixed
/// case check it); equality and hashing ignore ASCII case, as RFC 4343 requires.
public struct DNSName: Sendable, Hashable, CustomStringConvertible {
    /// Length-prefixed labels and the final zero byte; every initialiser keeps labels ≤ 63 and the total ≤ 255.
    let wire: [UInt8]

    /// The name of the root, `.`.
    public static let root = DNSName(uncheckedWire: [0])

    /// Wire bytes the caller has already validated (the reader, or slicing another name).
    init(uncheckedWire wire: [UInt8]) {
        self.wire = wire
    }

    /// A name from its labels, most specific first; nil when a label is empty or over 63 bytes, or the name
    /// would take over 255 bytes.
    public init?(labels: [[UInt8]]) {
        var wire: [UInt8] = []
        wire.reserveCapacity(labels.reduce(1) { $0 + 1 + $1.count })
        for label in labels {
            guard !label.isEmpty, label.count <= 63 else { return nil }
            wire.append(UInt8(label.count))
            wire.append(contentsOf: label)
        }
        wire.append(0)
        guard wire.count <= 255 else { return nil }
        self.wire = wire
    }

    /// A name as people write it: `www.cdn.test`, with or without the final dot; `.` or `` is the root.
    /// `\.` and `\DDD` escape a dot or any byte inside a label, as in zone files.
    public init?(_ text: String) {
        let utf8 = Array(text.utf8)
        if utf8.isEmpty || utf8 == [UInt8(ascii: ".")] {
            self = .root
            return
        }
        var wire: [UInt8] = [0]
        wire.reserveCapacity(utf8.count + 2)
        var lengthIndex = 0
        var labelLength = 0
        var index = 0
        while index < utf8.count {
            var byte = utf8[index]
            index += 1
            if byte == UInt8(ascii: ".") {
                guard labelLength > 0 else { return nil }
                wire[lengthIndex] = UInt8(labelLength)
                lengthIndex = wire.count
                wire.append(0)
                labelLength = 0
                continue
            }
            if byte == UInt8(ascii: "\\") {
                guard index < utf8.count else { return nil }
                if let value = Self.decimalEscape(utf8, at: index) {
                    byte = value
                    index += 3
                } else {
                    byte = utf8[index]
                    index += 1
                }
            }
            labelLength += 1
            guard labelLength <= 63 else { return nil }
            wire.append(byte)
        }
        if labelLength > 0 {
            wire[lengthIndex] = UInt8(labelLength)
            wire.append(0)
        }
        guard wire.count <= 255 else { return nil }
        self.wire = wire
    }

    /// The byte of a `\DDD` escape whose digits start at `index`, or nil when there are not three digits ≤ 255.
    private static func decimalEscape(_ text: [UInt8], at index: Int) -> UInt8? {
        guard index + 3 <= text.count else { return nil }
        var value = 0
        for offset in 0..<3 {
            let digit = Int(text[index + offset]) - Int(UInt8(ascii: "0"))
            guard digit >= 0, digit <= 9 else { return nil }
            value = value * 10 + digit
        }
        return value <= 255 ? UInt8(value) : nil
    }

    /// Bytes this name takes on the wire uncompressed, the final zero byte included.
    public var wireLength: Int { self.wire.count }

    public var isRoot: Bool { self.wire.count == 1 }

    public var labelCount: Int {
        var count = 0
        var offset = 0
        while self.wire[offset] != 0 {
            offset += 1 + Int(self.wire[offset])
            count += 1
        }
        return count
    }

    /// The most specific label, in its original case, without copying the others; empty for the root.
    public var firstLabel: ArraySlice<UInt8> { self.wire[1..<(1 + Int(self.wire[0]))] }

    /// The labels, most specific first, in their original case; empty for the root.
    public var labels: [[UInt8]] {
        var labels: [[UInt8]] = []
        var offset = 0
        while self.wire[offset] != 0 {
            let length = Int(self.wire[offset])
            labels.append(Array(self.wire[(offset + 1)..<(offset + 1 + length)]))
            offset += 1 + length
        }
        return labels
    }

    /// Whether this name is `zone` or lies below it; every name is under the root.
    public func isSubdomain(of zone: DNSName) -> Bool {
        self.offset(ofSuffix: zone) != nil
    }

    /// The labels left of `zone`, as a name of their own (`www.` for `www.cdn.test.` under `cdn.test.`, the root
    /// for the zone itself), or nil when this name is not under `zone`.
    public func dropping(suffix zone: DNSName) -> DNSName? {
        guard let offset = self.offset(ofSuffix: zone) else { return nil }
        var wire = Array(self.wire[0..<offset])
        wire.append(0)
        return DNSName(uncheckedWire: wire)
    }

    /// The same name in lowercase, for keys and logs that should not depend on the asker's case.
    public func lowercased() -> DNSName {
        DNSName(uncheckedWire: self.wire.map(Self.fold))
    }

    /// Where `zone` starts within this name's wire bytes, when this name ends with it at a label boundary.
    private func offset(ofSuffix zone: DNSName) -> Int? {
        let extra = self.labelCount - zone.labelCount
        guard extra >= 0 else { return nil }
        var offset = 0
        for _ in 0..<extra {
            offset += 1 + Int(self.wire[offset])
        }
        guard self.wire.count - offset == zone.wire.count else { return nil }
        for index in 0..<zone.wire.count where Self.fold(self.wire[offset + index]) != Self.fold(zone.wire[index]) {
            return nil
        }
        return offset
    }

    /// ASCII lowercase; harmless on length bytes, which never reach 'A' (65).
    @inline(__always)
    static func fold(_ byte: UInt8) -> UInt8 {
        byte &- 0x41 < 26 ? byte | 0x20 : byte
    }

    public static func == (lhs: DNSName, rhs: DNSName) -> Bool {
        guard lhs.wire.count == rhs.wire.count else { return false }
        return lhs.wire.withUnsafeBufferPointer { left in
            rhs.wire.withUnsafeBufferPointer { right in
                for index in 0..<left.count where left[index] != right[index] {
                    if fold(left[index]) != fold(right[index]) { return false }
                }
                return true
            }
        }
    }

    public func hash(into hasher: inout Hasher) {
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: self.wire.count) { folded in
            for index in 0..<self.wire.count {
                folded[index] = Self.fold(self.wire[index])
            }
            hasher.combine(bytes: UnsafeRawBufferPointer(folded))
        }
    }

    /// Presentation form, fully qualified (`www.cdn.test.`); dots, backslashes and unprintable bytes inside
    /// labels are escaped so that `init?(_:)` reads it back.
    public var description: String {
        if self.isRoot { return "." }
        var text: [UInt8] = []
        text.reserveCapacity(self.wire.count)
        var offset = 0
        while self.wire[offset] != 0 {
            let length = Int(self.wire[offset])
            for byte in self.wire[(offset + 1)..<(offset + 1 + length)] {
                if byte == UInt8(ascii: ".") || byte == UInt8(ascii: "\\") {
                    text.append(UInt8(ascii: "\\"))
                    text.append(byte)
                } else if byte > 0x20, byte < 0x7F {
                    text.append(byte)
                } else {
                    text.append(UInt8(ascii: "\\"))
                    text.append(UInt8(ascii: "0") + byte / 100)
                    text.append(UInt8(ascii: "0") + byte / 10 % 10)
                    text.append(UInt8(ascii: "0") + byte % 10)
                }
            }
            text.append(UInt8(ascii: "."))
            offset += 1 + length
        }
        return String(decoding: text, as: UTF8.self)
    }
}

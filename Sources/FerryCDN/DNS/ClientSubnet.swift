/// The EDNS Client Subnet option (RFC 7871): the network a resolver's client is in, so the answer can pick an
/// edge near the client rather than near the resolver.
///
/// The address is kept the way it travels, as the first ceil(source/8) bytes with the bits past the source
/// prefix zero, so that two options for the same network are equal however they were built.
public struct ClientSubnet: Sendable, Hashable, CustomStringConvertible {
    public enum Family: UInt16, Sendable, Hashable {
        case ipv4 = 1
        case ipv6 = 2

        /// Bits in an address of this family.
        public var addressBits: UInt8 { self == .ipv4 ? 32 : 128 }
    }

    public let family: Family
    /// How many leading bits of the client's address the resolver revealed.
    public let sourcePrefixLength: UInt8
    /// How many leading bits the answer depends on; 0 in queries, set by the server in answers.
    public let scopePrefixLength: UInt8
    /// The first ceil(sourcePrefixLength/8) bytes of the address, trailing bits zero.
    public let address: [UInt8]

    /// A subnet from any address of it: bytes past the source prefix are dropped and the last byte's extra bits
    /// cleared, a short address is padded with zeros. Nil when a prefix is longer than the family's addresses.
    public init?(family: Family, sourcePrefixLength: UInt8, scopePrefixLength: UInt8 = 0, address: [UInt8]) {
        guard sourcePrefixLength <= family.addressBits, scopePrefixLength <= family.addressBits else { return nil }
        let length = (Int(sourcePrefixLength) + 7) / 8
        var bytes = Array(address.prefix(length))
        while bytes.count < length {
            bytes.append(0)
        }
        let spare = length * 8 - Int(sourcePrefixLength)
        if spare > 0 {
            bytes[length - 1] &= UInt8(truncatingIfNeeded: 0xFF << spare)
        }
        self.family = family
        self.sourcePrefixLength = sourcePrefixLength
        self.scopePrefixLength = scopePrefixLength
        self.address = bytes
    }

    /// Already validated parts, as read off the wire.
    private init(checkedFamily family: Family, source: UInt8, scope: UInt8, address: [UInt8]) {
        self.family = family
        self.sourcePrefixLength = source
        self.scopePrefixLength = scope
        self.address = address
    }

    /// The option's data as RFC 7871 §7.1 requires it, or nil: a known family, prefixes no longer than its
    /// addresses, exactly ceil(source/8) address bytes, and no bits set past the source prefix.
    static func decode(_ data: UnsafeRawBufferPointer) -> ClientSubnet? {
        guard data.count >= 4,
            let family = Family(rawValue: UInt16(data[0]) << 8 | UInt16(data[1]))
        else { return nil }
        let source = data[2]
        let scope = data[3]
        guard source <= family.addressBits, scope <= family.addressBits else { return nil }
        let length = (Int(source) + 7) / 8
        guard data.count - 4 == length else { return nil }
        let spare = length * 8 - Int(source)
        if spare > 0, data[3 + length] & ~UInt8(truncatingIfNeeded: 0xFF << spare) != 0 { return nil }
        return ClientSubnet(
            checkedFamily: family,
            source: source,
            scope: scope,
            address: Array(UnsafeRawBufferPointer(rebasing: data[4...]))
        )
    }

    /// The same subnet answered for `scopePrefixLength` bits, capped at the family's address length; what a
    /// server echoes back.
    public func withScope(_ scopePrefixLength: UInt8) -> ClientSubnet {
        ClientSubnet(
            checkedFamily: self.family,
            source: self.sourcePrefixLength,
            scope: min(scopePrefixLength, self.family.addressBits),
            address: self.address
        )
    }

    /// The full address, zero-padded to 4 or 16 bytes, for matching against networks.
    public var paddedAddress: [UInt8] {
        var bytes = self.address
        let full = self.family == .ipv4 ? 4 : 16
        while bytes.count < full {
            bytes.append(0)
        }
        return bytes
    }

    /// `10.1.2.0/24/0` or `2001:db8:0:0:0:0:0:0/56/0`: address, source and scope prefix lengths.
    public var description: String {
        let bytes = self.paddedAddress
        let address: String
        if self.family == .ipv4 {
            address = bytes.map { String($0) }.joined(separator: ".")
        } else {
            address = stride(from: 0, to: 16, by: 2)
                .map { String(UInt16(bytes[$0]) << 8 | UInt16(bytes[$0 + 1]), radix: 16) }
                .joined(separator: ":")
        }
        return "\(address)/\(self.sourcePrefixLength)/\(self.scopePrefixLength)"
    }
}

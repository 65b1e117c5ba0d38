/// A CIDR network such as `10.1.0.0/16` or `2001:db8::/32`.
///
/// Host bits below the prefix are cleared (`10.1.2.3/16` is `10.1.0.0/16`), as Traffic Router
/// does when it compares networks: coverage files written by hand often carry them. An
/// IPv4-mapped IPv6 network of /96 or longer is the IPv4 network it stands for, so that it holds
/// the same clients whichever way they are written.
public struct IPNetwork: Sendable, Hashable, CustomStringConvertible {
    /// The first address of the network (host bits clear).
    public let address: IPAddress
    public let prefixLength: Int

    /// A network from an address and a prefix length: 0...32 for IPv4, 0...128 for IPv6.
    public init?(address: IPAddress, prefixLength: Int) {
        switch address {
        case .v4(let value):
            guard (0...32).contains(prefixLength) else { return nil }
            self.init(v4: value, prefixLength: prefixLength)
        case .v6(let value):
            guard (0...128).contains(prefixLength) else { return nil }
            if prefixLength >= 96, address.isIPv4Mapped {
                self.init(v4: UInt32(truncatingIfNeeded: value), prefixLength: prefixLength - 96)
            } else {
                self.init(v6: value, prefixLength: prefixLength)
            }
        }
    }

    /// Parses `address/length`; a bare address is a network of one (/32 or /128). The length is
    /// decimal without sign or leading zeros.
    public init?(_ text: some StringProtocol) {
        let parts = text.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false)
        guard let address = IPAddress(parts[0]) else { return nil }
        var length = address.isIPv4 ? 32 : 128
        if parts.count == 2 {
            let digits = parts[1]
            guard !digits.isEmpty, digits.count <= 3, digits.allSatisfy({ $0.isASCII && $0.isNumber }),
                digits == "0" || !digits.hasPrefix("0"), let parsed = Int(digits)
            else { return nil }
            length = parsed
        }
        self.init(address: address, prefixLength: length)
    }

    init(v4 value: UInt32, prefixLength: Int) {
        self.address = .v4(value & Self.mask32(prefixLength))
        self.prefixLength = prefixLength
    }

    init(v6 value: UInt128, prefixLength: Int) {
        self.address = .v6(value & Self.mask128(prefixLength))
        self.prefixLength = prefixLength
    }

    /// Whether the address is in this network. An IPv4-mapped IPv6 address is matched as the IPv4
    /// address it stands for; IPv4 and IPv6 networks otherwise hold only their own family.
    public func contains(_ address: IPAddress) -> Bool {
        switch (self.address, address.unmapped) {
        case (.v4(let network), .v4(let value)):
            value & Self.mask32(self.prefixLength) == network
        case (.v6(let network), .v6(let value)):
            value & Self.mask128(self.prefixLength) == network
        default:
            false
        }
    }

    public var description: String { "\(self.address)/\(self.prefixLength)" }

    static func mask32(_ length: Int) -> UInt32 {
        length == 0 ? 0 : UInt32.max << (32 - length)
    }

    static func mask128(_ length: Int) -> UInt128 {
        length == 0 ? 0 : UInt128.max << (128 - length)
    }
}

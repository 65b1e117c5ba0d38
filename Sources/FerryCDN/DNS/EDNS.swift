/// The OPT pseudo-record of RFC 6891, kept apart from the additional section because it is about the message
/// (payload size, extended response code, DNSSEC OK), not about any name.
public struct EDNS: Sendable, Hashable {
    /// The largest UDP answer the sender can reassemble; values under 512 mean 512 (RFC 6891 §6.2.3).
    public var udpPayloadSize: UInt16
    /// The high 8 bits of the 12-bit response code.
    public var extendedRcode: UInt8
    public var version: UInt8
    public var dnssecOK: Bool
    /// The EDNS Client Subnet option (RFC 7871), decoded because answers depend on it.
    public var clientSubnet: ClientSubnet?
    /// Every other option, in the order received (cookies, padding, ...).
    public var options: [EDNSOption]

    public init(
        udpPayloadSize: UInt16 = 1232,
        extendedRcode: UInt8 = 0,
        version: UInt8 = 0,
        dnssecOK: Bool = false,
        clientSubnet: ClientSubnet? = nil,
        options: [EDNSOption] = []
    ) {
        self.udpPayloadSize = udpPayloadSize
        self.extendedRcode = extendedRcode
        self.version = version
        self.dnssecOK = dnssecOK
        self.clientSubnet = clientSubnet
        self.options = options
    }

    /// Bytes the OPT record takes: root name, fixed fields, options.
    var wireLength: Int {
        var length = 11
        if let clientSubnet = self.clientSubnet {
            length += 4 + 4 + clientSubnet.address.count
        }
        for option in self.options {
            length += 4 + option.data.count
        }
        return length
    }
}

/// An EDNS option this codec does not interpret, carried as code and bytes.
public struct EDNSOption: Sendable, Hashable {
    public var code: UInt16
    public var data: [UInt8]

    public init(code: UInt16, data: [UInt8]) {
        self.code = code
        self.data = data
    }

    /// EDNS Client Subnet (RFC 7871); never found in `EDNS.options`, which hold it as `clientSubnet`.
    public static let clientSubnetCode: UInt16 = 8
    /// DNS cookies (RFC 7873).
    public static let cookieCode: UInt16 = 10
}

/// A record type (TYPE or QTYPE); a struct rather than an enum so that types this codec does not know
/// survive a parse and an encode unchanged.
public struct DNSRecordType: RawRepresentable, Sendable, Hashable, CustomStringConvertible {
    public var rawValue: UInt16

    public init(rawValue: UInt16) {
        self.rawValue = rawValue
    }

    public init(_ rawValue: UInt16) {
        self.rawValue = rawValue
    }

    public static let a = DNSRecordType(1)
    public static let ns = DNSRecordType(2)
    public static let cname = DNSRecordType(5)
    public static let soa = DNSRecordType(6)
    public static let ptr = DNSRecordType(12)
    public static let mx = DNSRecordType(15)
    public static let txt = DNSRecordType(16)
    public static let aaaa = DNSRecordType(28)
    public static let opt = DNSRecordType(41)
    public static let any = DNSRecordType(255)

    public var description: String {
        switch self.rawValue {
        case 1: "A"
        case 2: "NS"
        case 5: "CNAME"
        case 6: "SOA"
        case 12: "PTR"
        case 15: "MX"
        case 16: "TXT"
        case 28: "AAAA"
        case 41: "OPT"
        case 255: "ANY"
        default: "TYPE\(self.rawValue)"
        }
    }
}

/// A record class (CLASS or QCLASS); in practice always IN.
public struct DNSClass: RawRepresentable, Sendable, Hashable, CustomStringConvertible {
    public var rawValue: UInt16

    public init(rawValue: UInt16) {
        self.rawValue = rawValue
    }

    public init(_ rawValue: UInt16) {
        self.rawValue = rawValue
    }

    public static let `in` = DNSClass(1)
    public static let any = DNSClass(255)

    public var description: String {
        switch self.rawValue {
        case 1: "IN"
        case 255: "ANY"
        default: "CLASS\(self.rawValue)"
        }
    }
}

/// A response code of up to 12 bits: the header carries the low 4, an OPT record the high 8
/// (see `DNSMessage.responseCode`).
public struct DNSResponseCode: RawRepresentable, Sendable, Hashable, CustomStringConvertible {
    public var rawValue: UInt16

    public init(rawValue: UInt16) {
        self.rawValue = rawValue
    }

    public init(_ rawValue: UInt16) {
        self.rawValue = rawValue
    }

    public static let noError = DNSResponseCode(0)
    public static let formErr = DNSResponseCode(1)
    public static let servFail = DNSResponseCode(2)
    public static let nxDomain = DNSResponseCode(3)
    public static let notImp = DNSResponseCode(4)
    public static let refused = DNSResponseCode(5)
    /// The EDNS version asked for is not supported (RFC 6891); needs an OPT record to be expressed.
    public static let badVers = DNSResponseCode(16)

    public var description: String {
        switch self.rawValue {
        case 0: "NOERROR"
        case 1: "FORMERR"
        case 2: "SERVFAIL"
        case 3: "NXDOMAIN"
        case 4: "NOTIMP"
        case 5: "REFUSED"
        case 16: "BADVERS"
        default: "RCODE\(self.rawValue)"
        }
    }
}

/// A resource record of the answer, authority or additional section (OPT records are `EDNS` instead).
public struct DNSRecord: Sendable, Equatable {
    public var name: DNSName
    public var recordClass: DNSClass
    /// Seconds a resolver may cache the record.
    public var ttl: UInt32
    public var data: DNSRecordData

    public init(name: DNSName, recordClass: DNSClass = .in, ttl: UInt32, data: DNSRecordData) {
        self.name = name
        self.recordClass = recordClass
        self.ttl = ttl
        self.data = data
    }

    /// Taken from the data, so that a record cannot claim one type and carry another's data.
    public var type: DNSRecordType { self.data.type }
}

/// The RDATA of a record, decoded for the types an authoritative CDN server answers with.
///
/// Other types, and known ones whose RDATA is empty (dynamic update) or of the wrong size for an address, stay
/// `.unknown` with their bytes as received. Names inside RDATA are decompressed when read and may be compressed
/// when written, as RFC 3597 allows for these RFC 1035 types.
public enum DNSRecordData: Sendable, Equatable {
    /// An IPv4 address; a tuple so that the answer path allocates nothing for it.
    case a((UInt8, UInt8, UInt8, UInt8))
    /// An IPv6 address, 16 bytes.
    case aaaa([UInt8])
    case ns(DNSName)
    case cname(DNSName)
    case ptr(DNSName)
    case mx(preference: UInt16, exchange: DNSName)
    case soa(
        mname: DNSName,
        rname: DNSName,
        serial: UInt32,
        refresh: UInt32,
        retry: UInt32,
        expire: UInt32,
        minimum: UInt32
    )
    /// Character-strings; longer than 255 bytes are split into several when written.
    case txt([[UInt8]])
    case unknown(type: DNSRecordType, rdata: [UInt8])

    public var type: DNSRecordType {
        switch self {
        case .a: .a
        case .aaaa: .aaaa
        case .ns: .ns
        case .cname: .cname
        case .ptr: .ptr
        case .mx: .mx
        case .soa: .soa
        case .txt: .txt
        case .unknown(let type, _): type
        }
    }

    public static func == (lhs: DNSRecordData, rhs: DNSRecordData) -> Bool {
        switch (lhs, rhs) {
        case (.a(let left), .a(let right)): left == right
        case (.aaaa(let left), .aaaa(let right)): left == right
        case (.ns(let left), .ns(let right)): left == right
        case (.cname(let left), .cname(let right)): left == right
        case (.ptr(let left), .ptr(let right)): left == right
        case (.mx(let leftPreference, let left), .mx(let rightPreference, let right)):
            leftPreference == rightPreference && left == right
        case (
            .soa(let m1, let r1, let s1, let f1, let t1, let e1, let n1),
            .soa(let m2, let r2, let s2, let f2, let t2, let e2, let n2)
        ):
            m1 == m2 && r1 == r2 && s1 == s2 && f1 == f2 && t1 == t2 && e1 == e2 && n1 == n2
        case (.txt(let left), .txt(let right)): left == right
        case (.unknown(let leftType, let left), .unknown(let rightType, let right)):
            leftType == rightType && left == right
        default: false
        }
    }
}

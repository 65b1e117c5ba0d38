/// The fixed 12-byte header, minus the counts, which come from the sections.
public struct DNSHeader: Sendable, Hashable {
    public var id: UInt16
    public var isResponse: Bool
    /// 4 bits; 0 is QUERY.
    public var opcode: UInt8
    public var authoritative: Bool
    public var truncated: Bool
    public var recursionDesired: Bool
    public var recursionAvailable: Bool
    /// AD (RFC 4035); `dig` sets it in queries to ask whether the answer was validated.
    public var authenticData: Bool
    /// CD (RFC 4035).
    public var checkingDisabled: Bool
    /// Only the low 4 bits travel in the header; use `DNSMessage.responseCode` for codes over 15.
    public var rcode: DNSResponseCode

    public init(
        id: UInt16 = 0,
        isResponse: Bool = false,
        opcode: UInt8 = 0,
        authoritative: Bool = false,
        truncated: Bool = false,
        recursionDesired: Bool = false,
        recursionAvailable: Bool = false,
        authenticData: Bool = false,
        checkingDisabled: Bool = false,
        rcode: DNSResponseCode = .noError
    ) {
        self.id = id
        self.isResponse = isResponse
        self.opcode = opcode
        self.authoritative = authoritative
        self.truncated = truncated
        self.recursionDesired = recursionDesired
        self.recursionAvailable = recursionAvailable
        self.authenticData = authenticData
        self.checkingDisabled = checkingDisabled
        self.rcode = rcode
    }

    init(id: UInt16, flags: UInt16) {
        self.id = id
        self.isResponse = flags & 0x8000 != 0
        self.opcode = UInt8(flags >> 11 & 0xF)
        self.authoritative = flags & 0x0400 != 0
        self.truncated = flags & 0x0200 != 0
        self.recursionDesired = flags & 0x0100 != 0
        self.recursionAvailable = flags & 0x0080 != 0
        self.authenticData = flags & 0x0020 != 0
        self.checkingDisabled = flags & 0x0010 != 0
        self.rcode = DNSResponseCode(flags & 0xF)
    }

    /// The second 16 bits of the header; the reserved Z bit is always written as zero.
    var flags: UInt16 {
        var flags = UInt16(self.opcode & 0xF) << 11 | self.rcode.rawValue & 0xF
        if self.isResponse { flags |= 0x8000 }
        if self.authoritative { flags |= 0x0400 }
        if self.truncated { flags |= 0x0200 }
        if self.recursionDesired { flags |= 0x0100 }
        if self.recursionAvailable { flags |= 0x0080 }
        if self.authenticData { flags |= 0x0020 }
        if self.checkingDisabled { flags |= 0x0010 }
        return flags
    }
}

public struct DNSQuestion: Sendable, Hashable {
    public var name: DNSName
    public var type: DNSRecordType
    public var recordClass: DNSClass

    public init(name: DNSName, type: DNSRecordType, recordClass: DNSClass = .in) {
        self.name = name
        self.type = type
        self.recordClass = recordClass
    }
}

/// A whole DNS message (RFC 1035 §4), with its OPT record, if any, lifted out as `edns`.
public struct DNSMessage: Sendable, Equatable {
    public var header: DNSHeader
    public var questions: [DNSQuestion]
    public var answers: [DNSRecord]
    public var authority: [DNSRecord]
    /// Additional records other than OPT; an OPT record put here is left out when encoding.
    public var additional: [DNSRecord]
    public var edns: EDNS?

    /// The most any DNS message can be: TCP frames it behind a 16-bit length.
    public static let maximumSize = 65_535

    public init(
        header: DNSHeader,
        questions: [DNSQuestion] = [],
        answers: [DNSRecord] = [],
        authority: [DNSRecord] = [],
        additional: [DNSRecord] = [],
        edns: EDNS? = nil
    ) {
        self.header = header
        self.questions = questions
        self.answers = answers
        self.authority = authority
        self.additional = additional
        self.edns = edns
    }

    /// The full 12-bit response code, split between the header and the OPT record. Setting a code over 15
    /// adds an OPT record when there is none, since only it can carry the high bits.
    public var responseCode: DNSResponseCode {
        get {
            let high = UInt16(self.edns?.extendedRcode ?? 0) << 4
            return DNSResponseCode(high | self.header.rcode.rawValue & 0xF)
        }
        set {
            self.header.rcode = DNSResponseCode(newValue.rawValue & 0xF)
            let high = UInt8(truncatingIfNeeded: newValue.rawValue >> 4)
            if high != 0, self.edns == nil {
                self.edns = EDNS()
            }
            self.edns?.extendedRcode = high
        }
    }

    /// Reads a message received from the network; never traps and never allocates more than the message could
    /// describe, whatever the bytes.
    public static func parse(_ bytes: UnsafeRawBufferPointer) throws(DNSParseError) -> DNSMessage {
        var reader = DNSReader(bytes)
        return try reader.readMessage()
    }

    public static func parse(_ bytes: [UInt8]) throws(DNSParseError) -> DNSMessage {
        let result: Result<DNSMessage, DNSParseError> = bytes.withUnsafeBytes { buffer in
            do throws(DNSParseError) {
                return .success(try DNSMessage.parse(buffer))
            } catch {
                return .failure(error)
            }
        }
        return try result.get()
    }

    /// The message on the wire, at most `maximumSize` bytes (clamped to 12...65535), with names compressed.
    ///
    /// When it would be longer, the answer, authority and additional records are all left out and TC is set, so
    /// that the client retries over TCP (RFC 2181 §9); the questions and the OPT record stay, as RFC 6891 asks.
    public func encoded(maximumSize: Int = DNSMessage.maximumSize) -> [UInt8] {
        var bytes: [UInt8] = []
        self.encode(into: &bytes, maximumSize: maximumSize)
        return bytes
    }

    /// Like `encoded(maximumSize:)`, but into `buffer`, replacing its contents and reusing its storage, for a
    /// server that answers many queries from one thread.
    public func encode(into buffer: inout [UInt8], maximumSize: Int = DNSMessage.maximumSize) {
        var writer = DNSWriter(reusing: &buffer)
        writer.write(self, limit: min(max(maximumSize, 12), DNSMessage.maximumSize))
        swap(&buffer, &writer.bytes)
    }
}

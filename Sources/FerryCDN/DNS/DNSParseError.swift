/// Why a message could not be read, with its id when the header was there, so that the server can still
/// answer FORMERR to the right query.
public struct DNSParseError: Error, Sendable, Equatable, CustomStringConvertible {
    public enum Reason: Sendable, Equatable, CustomStringConvertible {
        /// The message ends inside the header, a question or a record.
        case truncated
        /// A label length byte over 63, that is one of the reserved 0b01 and 0b10 label types.
        case labelTooLong
        /// A name over 255 bytes once decompressed.
        case nameTooLong
        /// A compression pointer that does not point strictly before the name it is in, into the header,
        /// or one in a chain of too many.
        case badPointer
        /// The header counts more questions and records than the message has room for.
        case countMismatch
        /// More than one OPT record, one outside the additional section, one not owned by the root, or options
        /// that do not fill its RDATA exactly.
        case badOPT
        /// An EDNS Client Subnet option that breaks RFC 7871 §7.1.
        case badClientSubnet
        /// RDATA of a known type that does not parse, or is longer or shorter than its contents.
        case badRecordData
        /// Over 65535 bytes, which no DNS transport carries.
        case messageTooLarge

        public var description: String {
            switch self {
            case .truncated: "message ends too early"
            case .labelTooLong: "label length byte over 63 (reserved label type)"
            case .nameTooLong: "name longer than 255 bytes"
            case .badPointer: "compression pointer does not point back to an earlier name"
            case .countMismatch: "header counts more entries than the message can hold"
            case .badOPT: "malformed or misplaced OPT record"
            case .badClientSubnet: "malformed EDNS Client Subnet option"
            case .badRecordData: "malformed record data"
            case .messageTooLarge: "message longer than 65535 bytes"
            }
        }
    }

    public var reason: Reason
    /// The query id, when the message had a whole header.
    public var id: UInt16?
    /// Where in the message the problem was found.
    public var offset: Int

    public init(_ reason: Reason, id: UInt16?, offset: Int) {
        self.reason = reason
        self.id = id
        self.offset = offset
    }

    public var description: String {
        let id = self.id.map { ", id \($0)" } ?? ""
        return "malformed DNS message: \(self.reason) at byte \(self.offset)\(id)"
    }
}

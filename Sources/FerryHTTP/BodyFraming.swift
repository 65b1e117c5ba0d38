/// Where an HTTP/1.1 message body ends, found while its bytes pass through unchanged: the switch
/// forwards bodies as they come and must know, byte by byte, when the next message starts.
public struct BodyFraming: Sendable, Equatable {
    public enum Failure: Error, Equatable, CustomStringConvertible {
        case malformedChunkSize
        case malformedChunkEnd
        case chunkLineTooLong

        public var description: String {
            switch self {
            case .malformedChunkSize: "malformed chunk size in a chunked body"
            case .malformedChunkEnd: "a chunk's data is not followed by CRLF"
            case .chunkLineTooLong: "a chunk-size or trailer line is longer than 4096 bytes"
            }
        }
    }

    public enum Kind: Sendable, Equatable {
        /// No body, or its end has been reached.
        case complete
        case length(remaining: UInt64)
        case chunked(ChunkState)
        /// The body runs until the sender closes (a response without a length).
        case untilClose
    }

    /// Where a chunked body's scan stands.
    public enum ChunkState: Sendable, Equatable {
        case size(value: UInt64, digits: Int)
        /// After the size: a chunk extension, skipped up to its CR.
        case extensionText
        case sizeLF(last: Bool)
        case data(remaining: UInt64)
        case dataCR
        case dataLF
        /// At the start of a trailer line, or of the empty line that ends the body.
        case trailerStart
        case trailerText
        case trailerLF(empty: Bool)
    }

    public private(set) var kind: Kind
    /// Bytes of the current chunk-size or trailer line, bounded so a peer cannot feed one forever.
    private var lineLength = 0

    public init(_ kind: Kind) {
        self.kind = kind
    }

    public static func chunked() -> BodyFraming { BodyFraming(.chunked(.size(value: 0, digits: 0))) }

    public var isComplete: Bool { self.kind == .complete }

    /// Takes as many of `bytes` as belong to the body; returns how many. What is left over
    /// belongs to the next message.
    public mutating func consume(_ bytes: UnsafeRawBufferPointer) throws(Failure) -> Int {
        switch self.kind {
        case .complete:
            return 0
        case .untilClose:
            return bytes.count
        case .length(let remaining):
            let taken = Int(min(UInt64(bytes.count), remaining))
            self.kind = remaining == UInt64(taken) ? .complete : .length(remaining: remaining - UInt64(taken))
            return taken
        case .chunked(var state):
            var index = 0
            while index < bytes.count {
                let byte = bytes[index]
                switch state {
                case .data(let remaining):
                    let taken = Int(min(UInt64(bytes.count - index), remaining))
                    index += taken
                    state = remaining == UInt64(taken) ? .dataCR : .data(remaining: remaining - UInt64(taken))
                    continue
                case .size(let value, let digits):
                    if let digit = HexDigit.value(byte) {
                        guard digits < 16 else { throw .malformedChunkSize }
                        state = .size(value: value << 4 | UInt64(digit), digits: digits + 1)
                    } else if digits > 0 && (byte == 13 || byte == UInt8(ascii: ";")) {
                        self.lineLength = 0
                        self.pendingSize = value
                        state = byte == 13 ? .sizeLF(last: value == 0) : .extensionText
                    } else {
                        throw .malformedChunkSize
                    }
                case .extensionText:
                    try self.countLine()
                    if byte == 13 { state = .sizeLF(last: self.pendingSize == 0) }
                    if byte == 10 { throw .malformedChunkSize }
                case .sizeLF(let last):
                    guard byte == 10 else { throw .malformedChunkSize }
                    self.lineLength = 0
                    state = last ? .trailerStart : .data(remaining: self.pendingSize)
                case .dataCR:
                    guard byte == 13 else { throw .malformedChunkEnd }
                    state = .dataLF
                case .dataLF:
                    guard byte == 10 else { throw .malformedChunkEnd }
                    state = .size(value: 0, digits: 0)
                case .trailerStart:
                    self.lineLength = 0
                    if byte == 13 {
                        state = .trailerLF(empty: true)
                    } else {
                        guard byte != 10 else { throw .malformedChunkEnd }
                        state = .trailerText
                    }
                case .trailerText:
                    try self.countLine()
                    if byte == 13 { state = .trailerLF(empty: false) }
                    if byte == 10 { throw .malformedChunkEnd }
                case .trailerLF(let empty):
                    guard byte == 10 else { throw .malformedChunkEnd }
                    index += 1
                    if empty {
                        self.kind = .complete
                        return index
                    }
                    state = .trailerStart
                    continue
                }
                index += 1
            }
            self.kind = .chunked(state)
            return index
        }
    }

    /// The size of the chunk whose size line is being read.
    private var pendingSize: UInt64 = 0

    private mutating func countLine() throws(Failure) {
        self.lineLength += 1
        if self.lineLength > 4096 { throw .chunkLineTooLong }
    }
}

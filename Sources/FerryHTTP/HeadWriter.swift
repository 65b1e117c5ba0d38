import NIOCore

/// Writes a message head into memory reserved for all of it at once.
///
/// A proxy's head is a dozen pieces (a line, the fields passed on, what the hop adds); written one
/// `ByteBuffer` call each, every piece paid for a capacity check and an exclusivity check, which
/// together cost more than the parsing. Here the buffer is reserved once and the pieces are
/// copied in.
public struct HeadWriter: ~Copyable {
    private let start: UnsafeMutableRawPointer
    private let capacity: Int
    public private(set) var count = 0

    init(_ memory: UnsafeMutableRawBufferPointer) {
        self.start = memory.baseAddress!
        self.capacity = memory.count
    }

    public mutating func write(_ bytes: UnsafeRawBufferPointer) {
        guard bytes.count > 0 else { return }
        // Past the reservation is someone else's memory: a wrong size is a crash, not a corruption.
        precondition(bytes.count <= self.capacity - self.count, "a head outgrew the room reserved for it")
        (self.start + self.count).copyMemory(from: bytes.baseAddress!, byteCount: bytes.count)
        self.count += bytes.count
    }

    public mutating func write(_ text: StaticString) {
        self.write(UnsafeRawBufferPointer(start: text.utf8Start, count: text.utf8CodeUnitCount))
    }

    /// Labelled apart from the `StaticString` one, which a literal would otherwise not reach
    /// (Swift gives a literal the type `String` first).
    public mutating func write(string text: String) {
        // In place when the text is stored as UTF-8 (Swift's own strings are); `withUTF8` took a
        // copy of the string first, a fifth of a request's head-writing instructions.
        let written: Void? = text.utf8.withContiguousStorageIfAvailable { self.write(UnsafeRawBufferPointer($0)) }
        if written == nil {
            for byte in text.utf8 { withUnsafeBytes(of: byte) { self.write($0) } }
        }
    }
}

extension ByteBuffer {
    /// Appends a head of at most `capacity` bytes, written by `body` in one reservation.
    public mutating func writeHead(capacity: Int, _ body: (inout HeadWriter) -> Void) {
        precondition(capacity > 0, "a head has at least its final CRLF")
        self.writeWithUnsafeMutableBytes(minimumWritableBytes: capacity) { memory in
            var writer = HeadWriter(UnsafeMutableRawBufferPointer(rebasing: memory[..<capacity]))
            body(&writer)
            return writer.count
        }
    }
}

import FerryHTTP
import Foundation
import NIOCore

/// One answer as the fetch client keeps it.
public struct FetchedResponse: Sendable {
    public var status: Int
    /// `Content-Type`, lowercased, without parameters.
    public var contentType: String
    public var body: [UInt8]
    /// The server keeps the connection open after it.
    public var keepAlive: Bool
}

/// Reads HTTP/1.1 answers off a keep-alive connection's bytes, as strictly as the switch reads
/// its backends' (``HTTPResponseParser``): heads, then bodies by their framing (length, chunked,
/// or until the close), chunked bodies decoded. A value: tested without sockets.
struct ResponseReader {
    enum Failure: Error, CustomStringConvertible {
        case malformed(String)

        var description: String {
            switch self {
            case .malformed(let reason): "the server's answer is malformed: \(reason)"
            }
        }
    }

    private var parser = HTTPResponseParser()
    private var buffer = ByteBuffer()
    private var current: (response: FetchedResponse, framing: BodyFraming, chunked: Bool)?

    mutating func feed(_ bytes: ByteBuffer) {
        var bytes = bytes
        self.buffer.writeBuffer(&bytes)
    }

    /// The next whole answer, or nil until more bytes come.
    mutating func next() throws(Failure) -> FetchedResponse? {
        while true {
            if self.current == nil {
                let head: ByteBuffer?
                do {
                    head = try self.parser.nextHead(&self.buffer)
                } catch {
                    throw .malformed("\(error)")
                }
                guard let head else { return nil }
                let started = try head.withUnsafeReadableBytes { raw throws(Failure) in
                    try self.start(raw)
                }
                // 1xx answers come before the real one; they have no body.
                guard let started else { continue }
                self.current = started
            }
            guard var current = self.current else { return nil }
            if case .untilClose = current.framing.kind { return nil }
            let taken: Int
            do {
                taken = try self.buffer.withUnsafeReadableBytes { bytes throws(BodyFraming.Failure) in
                    try current.framing.consume(bytes)
                }
            } catch {
                throw .malformed("\(error)")
            }
            current.response.body += self.buffer.readBytes(length: taken) ?? []
            self.current = current
            guard current.framing.isComplete else { return nil }
            self.current = nil
            if current.chunked { current.response.body = try Self.dechunk(current.response.body) }
            return current.response
        }
    }

    /// The connection closed: an answer that runs until the close is whole now.
    mutating func closed() -> FetchedResponse? {
        guard let current = self.current, case .untilClose = current.framing.kind else { return nil }
        self.current = nil
        var response = current.response
        response.body += self.buffer.readBytes(length: self.buffer.readableBytes) ?? []
        response.keepAlive = false
        return response
    }

    /// Whether bytes of an answer not yet whole are waiting (the connection ended mid-answer).
    var isMidAnswer: Bool { self.current != nil || self.buffer.readableBytes > 0 }

    private func start(
        _ raw: UnsafeRawBufferPointer
    ) throws(Failure) -> (response: FetchedResponse, framing: BodyFraming, chunked: Bool)? {
        let line: HTTPResponseParser.StatusLine
        let fields: ForwardedFields
        do {
            line = try HTTPResponseParser.statusLine(raw)
            fields = try ForwardedFields(raw, from: line.fieldsStart, parser: self.parser.fieldRules)
        } catch {
            throw .malformed("\(error)")
        }
        if line.status < 200 { return nil }
        guard fields.contentLengthCount <= 1, fields.contentLengthIsNumber,
            fields.contentLengthCount == 0 || fields.transferEncoding.isEmpty
        else { throw .malformed("its body's length is given twice, or two ways") }
        let type =
            fields.values("content-type", in: raw).first?.split(separator: ";").first?
            .trimmingCharacters(in: .whitespaces).lowercased() ?? ""
        let response = FetchedResponse(
            status: line.status,
            contentType: type,
            body: [],
            keepAlive: fields.keepAlive(minorVersion: line.minorVersion)
        )
        if line.status == 204 || line.status == 304 { return (response, BodyFraming(.complete), false) }
        if !fields.transferEncoding.isEmpty {
            guard fields.endsChunked else { throw .malformed("a transfer coding that does not end in chunked") }
            return (response, .chunked(), true)
        }
        if let length = fields.contentLength {
            return (response, BodyFraming(length == 0 ? .complete : .length(remaining: length)), false)
        }
        return (response, BodyFraming(.untilClose), false)
    }

    /// A chunked body's data, without its sizes, extensions and trailers (the framing has
    /// checked its shape already).
    static func dechunk(_ raw: [UInt8]) throws(Failure) -> [UInt8] {
        var data: [UInt8] = []
        var index = 0
        while index < raw.count {
            var size = 0
            while index < raw.count, let digit = HexDigit.value(raw[index]) {
                size = size * 16 + Int(digit)
                index += 1
            }
            // Past any extension, to the line's end.
            while index < raw.count, raw[index] != UInt8(ascii: "\n") { index += 1 }
            index += 1
            if size == 0 { break }
            guard index + size <= raw.count else { throw .malformed("a chunk longer than its body") }
            data += raw[index..<(index + size)]
            index += size + 2
        }
        return data
    }
}

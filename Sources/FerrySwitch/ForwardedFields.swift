import FerryServer
import NIOCore

/// What a proxy must know of one message's header fields, gathered in one pass, and the fields
/// it passes on: everything but the hop-by-hop fields, which describe one connection only.
struct ForwardedFields {
    var contentLengthCount = 0
    var contentLength: UInt64?
    var transferEncoding: [String] = []
    /// The Connection header's tokens, lowercased: options, and names of more hop-by-hop fields.
    var connection: [String] = []
    var host: Substring = ""
    var forwardedFor: String?
    /// The client accepts trailers (`TE: trailers`). TE is hop-by-hop, but trailers pass through
    /// the switch untouched, so the switch asks its backend for them in turn.
    var acceptsTrailers = false

    init(_ headers: HTTPHeaders) {
        for field in headers {
            let name = field.name
            switch name.utf8.count {
            case 2 where name.caseInsensitiveEquals("te"):
                self.acceptsTrailers = self.acceptsTrailers || field.value.lowercased().contains("trailers")
            case 4 where name.caseInsensitiveEquals("host"):
                self.host = field.value.split(separator: ":", maxSplits: 1).first ?? ""
            case 10 where name.caseInsensitiveEquals("connection"):
                for token in field.value.utf8.split(separator: UInt8(ascii: ",")) {
                    let trimmed = token.drop { $0 == 32 || $0 == 9 }.reversed().drop { $0 == 32 || $0 == 9 }
                    self.connection.append(String(decoding: trimmed.reversed().map { $0 | 0x20 }, as: UTF8.self))
                }
            case 14 where name.caseInsensitiveEquals("content-length"):
                self.contentLengthCount += 1
                self.contentLength = UInt64(field.value)
            case 15 where name.caseInsensitiveEquals("x-forwarded-for"):
                self.forwardedFor = self.forwardedFor.map { "\($0), \(field.value)" } ?? field.value
            case 17 where name.caseInsensitiveEquals("transfer-encoding"):
                self.transferEncoding.append(field.value)
            default:
                break
            }
        }
    }

    /// Whether the sender keeps its connection open after this message.
    func keepAlive(minorVersion: Int) -> Bool {
        minorVersion == 1 ? !self.connection.contains("close") : self.connection.contains("keep-alive")
    }

    /// Whether the transfer coding's last step is chunked, as HTTP/1.1 requires of a coded body.
    var endsChunked: Bool {
        let last = self.transferEncoding.last?.split(separator: ",").last
        return last.map { $0.trimmingCharacters(in: .whitespaces).lowercased() == "chunked" } ?? false
    }

    /// Writes every field to pass on (`NAME: VALUE` lines), leaving out hop-by-hop fields and,
    /// when asked, X-Forwarded-For (which the caller writes itself, extended).
    func writePassedOn(_ headers: HTTPHeaders, to out: inout ByteBuffer, exceptForwardedFor: Bool) {
        for field in headers {
            let name = field.name
            if self.isHopByHop(name) { continue }
            if exceptForwardedFor, name.caseInsensitiveEquals("x-forwarded-for") { continue }
            out.writeString(name)
            out.writeStaticString(": ")
            out.writeString(field.value)
            out.writeStaticString("\r\n")
        }
    }

    private func isHopByHop(_ name: String) -> Bool {
        switch name.utf8.count {
        case 2: if name.caseInsensitiveEquals("te") { return true }
        case 7: if name.caseInsensitiveEquals("upgrade") || name.caseInsensitiveEquals("trailer") { return true }
        case 10: if name.caseInsensitiveEquals("connection") || name.caseInsensitiveEquals("keep-alive") { return true }
        case 16: if name.caseInsensitiveEquals("proxy-connection") { return true }
        default: break
        }
        return self.connection.contains { $0.caseInsensitiveEquals(name) }
    }
}

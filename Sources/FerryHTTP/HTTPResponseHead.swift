import NIOCore

/// The status line and header fields of a response.
public struct HTTPResponseHead: Sendable, Equatable {
    public var status: HTTPStatus
    public var headers: HTTPHeaders

    public init(status: HTTPStatus, headers: HTTPHeaders = []) {
        self.status = status
        self.headers = headers
    }

    /// Writes `HTTP/1.1 <code> <reason>`, the fields and the blank line.
    public func write(to buffer: inout ByteBuffer) {
        buffer.writeString("HTTP/1.1 \(self.status.code) \(self.status.reason)\r\n")
        for field in self.headers {
            buffer.writeString(field.name)
            buffer.writeStaticString(": ")
            buffer.writeString(field.value)
            buffer.writeStaticString("\r\n")
        }
        buffer.writeStaticString("\r\n")
    }
}

extension HTTPStatus {
    /// The body of a short plain-text answer, the kind every error of Ferry's gets.
    public func plainText(_ message: String) -> String {
        "\(self.code) \(self.reason): \(message)\n"
    }

    /// A whole plain-text answer after which the connection closes: for a server that refuses or
    /// gives up on a client outside the flow of its requests (408, a cap's 503).
    public func closingAnswer(_ message: String) -> ByteBuffer {
        let body = self.plainText(message)
        var answer = ByteBuffer()
        HTTPResponseHead(
            status: self,
            headers: [
                ("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", "\(body.utf8.count)"),
                ("Connection", "close"),
            ]
        ).write(to: &answer)
        answer.writeString(body)
        return answer
    }
}

/// An HTTP status code and its reason phrase.
public struct HTTPStatus: Sendable, Hashable {
    public var code: Int
    public var reason: String

    public init(code: Int, reason: String) {
        self.code = code
        self.reason = reason
    }

    public static let ok = HTTPStatus(code: 200, reason: "OK")
    public static let partialContent = HTTPStatus(code: 206, reason: "Partial Content")
    public static let notModified = HTTPStatus(code: 304, reason: "Not Modified")
    public static let badRequest = HTTPStatus(code: 400, reason: "Bad Request")
    public static let forbidden = HTTPStatus(code: 403, reason: "Forbidden")
    public static let notFound = HTTPStatus(code: 404, reason: "Not Found")
    public static let methodNotAllowed = HTTPStatus(code: 405, reason: "Method Not Allowed")
    public static let requestTimeout = HTTPStatus(code: 408, reason: "Request Timeout")
    public static let rangeNotSatisfiable = HTTPStatus(code: 416, reason: "Range Not Satisfiable")
    public static let internalServerError = HTTPStatus(code: 500, reason: "Internal Server Error")
    public static let serviceUnavailable = HTTPStatus(code: 503, reason: "Service Unavailable")
}

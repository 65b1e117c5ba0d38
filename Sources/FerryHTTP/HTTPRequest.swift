/// One parsed HTTP/1.x request head. Ferry's servers take no request bodies.
public struct HTTPRequest: Sendable, Equatable {
    public var method: String
    /// The request target exactly as sent (origin-form `/a/b?q` or absolute-form `http://h/a`).
    public var target: String
    /// `0` for HTTP/1.0, `1` for HTTP/1.1.
    public var minorVersion: Int
    public var headers: HTTPHeaders
    /// Whether the request announced a body (Content-Length > 0 or Transfer-Encoding).
    public var hasBody: Bool

    public init(method: String, target: String, minorVersion: Int = 1, headers: HTTPHeaders = [], hasBody: Bool = false)
    {
        self.method = method
        self.target = target
        self.minorVersion = minorVersion
        self.headers = headers
        self.hasBody = hasBody
    }

    /// Whether the connection can stay open after the response: the client wants it, and it sent
    /// no body (which Ferry's servers do not read, so what follows could not be framed).
    public var keepAlive: Bool {
        guard !self.hasBody else { return false }
        guard let connection = self.headers["connection"] else { return self.minorVersion == 1 }
        let tokens = connection.utf8.split(separator: UInt8(ascii: ",")).map {
            String(decoding: $0, as: UTF8.self).trimmingCharacters(in: " \t").lowercased()
        }
        if self.minorVersion == 0 { return tokens.contains("keep-alive") }
        return !tokens.contains("close")
    }

    /// Whether the client accepts trailers, and so may get a chunked body that can end early
    /// with `Ferry-Transfer: cancelled` while the connection stays usable.
    public var acceptsTrailers: Bool {
        self.minorVersion >= 1 && (self.headers["te"]?.lowercased().contains("trailers") ?? false)
    }
}

/// An ordered list of header fields, looked up without regard to case.
public struct HTTPHeaders: Sendable, Equatable, ExpressibleByArrayLiteral, Sequence {
    public private(set) var fields: [(name: String, value: String)]

    public init(arrayLiteral elements: (String, String)...) {
        self.fields = elements.map { (name: $0.0, value: $0.1) }
    }

    public mutating func add(_ name: String, _ value: String) {
        self.fields.append((name, value))
    }

    /// The first value of `name`.
    public subscript(name: String) -> String? {
        self.fields.first { $0.name.caseInsensitiveEquals(name) }?.value
    }

    /// Every value of `name`, in order.
    public func values(_ name: String) -> [String] {
        self.fields.filter { $0.name.caseInsensitiveEquals(name) }.map(\.value)
    }

    public func makeIterator() -> IndexingIterator<[(name: String, value: String)]> {
        self.fields.makeIterator()
    }

    public static func == (lhs: HTTPHeaders, rhs: HTTPHeaders) -> Bool {
        lhs.fields.elementsEqual(rhs.fields) { $0.name == $1.name && $0.value == $1.value }
    }
}

extension String {
    /// Compares header names (tokens): ASCII letters match in either case, every other byte only
    /// itself. Runs on every header lookup of every request, so it compares the bytes in place
    /// where it can.
    func caseInsensitiveEquals(_ other: String) -> Bool {
        guard self.utf8.count == other.utf8.count else { return false }
        let fast = self.utf8.withContiguousStorageIfAvailable { left in
            other.utf8.withContiguousStorageIfAvailable { right in
                var index = 0
                while index < left.count {
                    if left[index].asciiLowercased != right[index].asciiLowercased { return false }
                    index += 1
                }
                return true
            }
        }
        if let fast, let result = fast { return result }
        return zip(self.utf8, other.utf8).allSatisfy { $0.asciiLowercased == $1.asciiLowercased }
    }
}

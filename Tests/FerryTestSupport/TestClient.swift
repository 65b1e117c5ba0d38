import CFerryLinux

#if canImport(Glibc)
import Glibc
#endif

/// The tests' one client: a deliberately plain blocking TCP client that sends exactly the bytes a
/// test writes (so traversal attempts and smuggling reach the server unnormalised), reads as
/// slowly as a test wants, can send TCP urgent data, and reads HTTP/1.1 responses. Every read
/// gives up after `timeout` seconds, so a broken server fails a test instead of hanging it.
public final class TestClient: @unchecked Sendable {
    // Sendable: one thread may send while another reads; sending touches only the descriptor.
    public struct Response {
        public var status: Int
        public var headers: [(String, String)]
        public var body: [UInt8]
        public var trailers: [(String, String)] = []

        public init(status: Int, headers: [(String, String)], body: [UInt8], trailers: [(String, String)] = []) {
            self.status = status
            self.headers = headers
            self.body = body
            self.trailers = trailers
        }

        public func header(_ name: String) -> String? {
            self.headers.first { $0.0.lowercased() == name.lowercased() }?.1
        }

        public var text: String { String(decoding: self.body, as: UTF8.self) }
    }

    public let descriptor: Int32
    private var pending: [UInt8] = []

    /// - Parameter udp: a connected datagram socket instead of TCP.
    /// - Parameter host: an IPv4 address (the whole of 127.0.0.0/8 is loopback).
    /// - Parameter source: the IPv4 address to connect from (another loopback address makes
    ///   another client, as a server's per-source cap counts them); the kernel's choice when nil.
    public init(
        port: Int,
        host: String = "127.0.0.1",
        source: String? = nil,
        receiveBuffer: Int32? = nil,
        timeout: Int = 10,
        udp: Bool = false
    ) throws {
        self.descriptor = socket(
            AF_INET,
            Int32((udp ? SOCK_DGRAM : SOCK_STREAM).rawValue) | Int32(SOCK_CLOEXEC.rawValue),
            0
        )
        if var size = receiveBuffer {
            setsockopt(self.descriptor, SOL_SOCKET, SO_RCVBUF, &size, socklen_t(MemoryLayout<Int32>.size))
        }
        var receiveTimeout = timeval(tv_sec: timeout, tv_usec: 0)
        setsockopt(self.descriptor, SOL_SOCKET, SO_RCVTIMEO, &receiveTimeout, socklen_t(MemoryLayout<timeval>.size))
        if let source, Self.withAddress(source, port: 0, { bind(self.descriptor, $0, $1) }) != 0 {
            let reason = String(cString: strerror(errno))
            throw TestFailure("bind to \(source): \(reason)")
        }
        guard Self.withAddress(host, port: port, { connect(self.descriptor, $0, $1) }) == 0 else {
            // Thrown with every property set: deinit closes the socket.
            let reason = String(cString: strerror(errno))
            throw TestFailure("connect to \(host):\(port): \(reason)")
        }
    }

    /// Calls `body` with the IPv4 socket address of `host:port`, as bind(2) and connect(2) take it.
    private static func withAddress(
        _ host: String,
        port: Int,
        _ body: (UnsafePointer<sockaddr>, socklen_t) -> Int32
    ) -> Int32 {
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr(host)
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
    }

    private var isClosed = false

    deinit { self.close() }

    /// Closes the connection (once; the client closes itself when let go).
    public func close() {
        guard !self.isClosed else { return }
        self.isClosed = true
        Glibc.close(self.descriptor)
    }

    public func send(_ text: String) throws {
        try self.sendAll(Array(text.utf8))
    }

    private func sendAll(_ bytes: [UInt8]) throws {
        var offset = 0
        while offset < bytes.count {
            let sent = bytes[offset...].withUnsafeBytes {
                Glibc.send(self.descriptor, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL))
            }
            guard sent > 0 else { throw TestFailure("send: \(String(cString: strerror(errno)))") }
            offset += sent
        }
    }

    /// `GET path` with the given extra header lines.
    public func get(_ path: String, _ headers: [String] = [], method: String = "GET") throws {
        try self.send("\(method) \(path) HTTP/1.1\r\nHost: test\r\n" + headers.map { $0 + "\r\n" }.joined() + "\r\n")
    }

    public func sendUrgent(_ byte: UInt8 = 0x21) throws {
        guard ferry_send_urgent(self.descriptor, byte) == 1 else {
            throw TestFailure("send MSG_OOB: \(String(cString: strerror(errno)))")
        }
    }

    /// Reads at most `count` bytes; empty at end of stream.
    public func read(upTo count: Int) throws -> [UInt8] {
        if !self.pending.isEmpty {
            let taken = Array(self.pending.prefix(count))
            self.pending.removeFirst(taken.count)
            return taken
        }
        var buffer = [UInt8](repeating: 0, count: count)
        let received = recv(self.descriptor, &buffer, count, 0)
        if received < 0, errno == ECONNRESET { return [] }  // a server closing with our bytes unread resets
        guard received >= 0 else { throw TestFailure("recv: \(String(cString: strerror(errno)))") }
        return Array(buffer.prefix(received))
    }

    private func readLine() throws -> String {
        var line: [UInt8] = []
        while true {
            let byte = try self.read(upTo: 1)
            guard let first = byte.first else { throw TestFailure("connection closed inside a line") }
            if first == 10 { break }
            line.append(first)
        }
        if line.last == 13 { line.removeLast() }
        return String(decoding: line, as: UTF8.self)
    }

    private func readExactly(_ count: Int) throws -> [UInt8] {
        var bytes: [UInt8] = []
        while bytes.count < count {
            let chunk = try self.read(upTo: min(65536, count - bytes.count))
            guard !chunk.isEmpty else {
                throw TestFailure("connection closed after \(bytes.count) of \(count) bytes")
            }
            bytes += chunk
        }
        return bytes
    }

    /// Reads a status line and headers.
    public func readHead() throws -> Response {
        let statusLine = try self.readLine()
        let parts = statusLine.split(separator: " ", maxSplits: 2)
        guard parts.count >= 2, let status = Int(parts[1]) else {
            throw TestFailure("bad status line '\(statusLine)'")
        }
        var headers: [(String, String)] = []
        while true {
            let line = try self.readLine()
            if line.isEmpty { break }
            let field = line.split(separator: ":", maxSplits: 1)
            headers.append((String(field[0]), field.count > 1 ? String(field[1].drop { $0 == " " }) : ""))
        }
        return Response(status: status, headers: headers, body: [])
    }

    /// Reads a whole response; `head` says whether it answers a HEAD request (no body follows).
    public func readResponse(head: Bool = false) throws -> Response {
        var response = try self.readHead()
        if head || response.status == 204 || response.status == 304 { return response }
        if response.header("transfer-encoding") == "chunked" {
            while true {
                let sizeLine = try self.readLine()
                let size = Int(String(sizeLine.prefix { $0 != ";" }.filter { $0 != " " }), radix: 16) ?? -1
                guard size >= 0 else { throw TestFailure("bad chunk size") }
                if size == 0 { break }
                response.body += try self.readExactly(size)
                _ = try self.readLine()
            }
            while true {
                let line = try self.readLine()
                if line.isEmpty { break }
                let field = line.split(separator: ":", maxSplits: 1)
                response.trailers.append((String(field[0]), String(field[1].drop { $0 == " " })))
            }
        } else if let length = response.header("content-length").flatMap({ Int($0) }) {
            response.body = try self.readExactly(length)
        } else {
            while case let chunk = try self.read(upTo: 65536), !chunk.isEmpty { response.body += chunk }
        }
        return response
    }

    /// Reads until the server closes the connection; returns how many bytes came.
    public func drainUntilClosed() throws -> Int {
        var total = 0
        while true {
            let chunk = try self.read(upTo: 65536)
            if chunk.isEmpty { return total }
            total += chunk.count
        }
    }

    // MARK: Raw bytes and lines

    /// Sends `bytes`, as much as the connection takes.
    public func send(_ bytes: [UInt8]) {
        try? self.sendAll(bytes)
    }

    /// Reads until `count` bytes came, the connection ended or a read timed out.
    public func receive(_ count: Int) -> [UInt8] {
        var bytes: [UInt8] = []
        while bytes.count < count, let chunk = try? self.read(upTo: min(65536, count - bytes.count)), !chunk.isEmpty {
            bytes += chunk
        }
        return bytes
    }

    /// One datagram (a UDP client); empty when none came before a read timed out.
    public func datagram() -> [UInt8] {
        (try? self.read(upTo: 65536)) ?? []
    }

    /// Reads until `count` bytes came or the peer closed, as text; `nil` when nothing came before
    /// a read timed out.
    public func text(atLeast count: Int = 1) -> String? {
        var bytes: [UInt8] = []
        while bytes.count < count {
            guard let chunk = try? self.read(upTo: 4096) else {
                return bytes.isEmpty ? nil : String(decoding: bytes, as: UTF8.self)
            }
            if chunk.isEmpty { break }
            bytes += chunk
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// Whether the peer closed the connection without sending anything.
    public var isClosedByPeer: Bool { (try? self.read(upTo: 1)) == [] }

    /// One line, without its end; what came before the connection ended if it did.
    public func line() -> String {
        var line: [UInt8] = []
        while let byte = (try? self.read(upTo: 1))?.first, byte != 10 { line.append(byte) }
        if line.last == 13 { line.removeLast() }
        return String(decoding: line, as: UTF8.self)
    }

    /// Closes the sending side: the server reads the end of the stream.
    public func finishSending() { shutdown(self.descriptor, Int32(SHUT_WR)) }

    // MARK: Exchanges

    /// Sends `request` as given and reads one response; nil when the connection ends (or a read
    /// times out) before a whole response.
    public func exchange(_ request: String, headRequest: Bool = false) -> Response? {
        guard (try? self.send(request)) != nil else { return nil }
        return try? self.readResponse(head: headRequest)
    }

    /// `GET path` for `host`, with extra header lines, and its response.
    public func fetch(_ path: String, host: String = "ferry.test", headers: String = "") -> Response? {
        self.exchange("GET \(path) HTTP/1.1\r\nHost: \(host)\r\n\(headers)\r\n")
    }
}

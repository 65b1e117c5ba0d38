import CFerryLinux
import FerryEndpoints
import FerryPosix
import FerryWire
import Foundation
import NIOCore

#if canImport(Glibc)
import Glibc
#endif

/// One connection of the migration port, used blocking by the move's thread. A move's bulk —
/// memory, megabytes to gigabytes — goes from the guest's memory to the connection and from the
/// connection into a buffer the target restores from; the few small messages around it are
/// frames: a type byte, a length (8 bytes, big-endian) and the payload. The bytes travel through
/// TLS with the cluster's certificates when this process has them, else straight through the
/// socket (``MigrationTransport``).
final class MigrationSocket: @unchecked Sendable {
    // Sendable: used by one thread at a time (the move's); `close` may come from another.
    private let transport: any MigrationTransport
    /// Who is at the other end, for errors and logs.
    let peer: String
    private(set) var bytesSent = 0
    private(set) var bytesReceived = 0

    /// Frame types of the hand-over.
    enum FrameType: UInt8, CustomStringConvertible {
        case offer = 1
        case accept, refuse, code, memory, state, commit, committed, released
        /// Pre-copy: a run of pages, sent while the process runs or at its stop.
        case pages
        /// Post-copy: the target asks for the page at an offset (8 bytes), which its process waits for.
        case want
        /// Post-copy: every page is at the target; the source may let go of its memory.
        case complete

        var description: String {
            switch self {
            case .offer: "offer"
            case .accept: "accept"
            case .refuse: "refuse"
            case .code: "code"
            case .memory: "memory"
            case .state: "state"
            case .commit: "commit"
            case .committed: "committed"
            case .released: "released"
            case .pages: "pages"
            case .want: "want"
            case .complete: "complete"
            }
        }
    }

    /// The migration port's greeting: a peer that does not start with it is not a Ferry node.
    static let magic = Array("FMIG\u{01}".utf8)
    /// The largest frame other than memory: offers, state (without memory), resources and code.
    static let maxFrameBytes = 256 << 20

    /// A connection over `fd` (which this now owns): through TLS when `credentials` are given,
    /// after a handshake in which each side proves it is a member of the cluster.
    init(fd: Int32, peer: String, timeout: Duration, credentials: ClusterCredentials?, isServer: Bool) throws {
        self.peer = peer
        if let credentials {
            self.transport = try TLSMigrationTransport(
                fd: fd,
                isServer: isServer,
                credentials: credentials,
                peer: peer,
                timeout: timeout
            )
        } else {
            self.transport = PlainMigrationTransport(fd: fd, peer: peer, timeout: timeout)
        }
    }

    /// Connects to a node's migration port; fails at once (in one line) when nothing listens.
    static func connect(to endpoint: ServiceEndpoint, timeout: Duration) throws -> MigrationSocket {
        let connection: BlockingSocket
        do {
            connection = try BlockingSocket.connect(
                host: endpoint.host,
                port: endpoint.port,
                patience: .eachCall(timeout)
            )
        } catch {
            throw MigrationError.transport("cannot reach the migration port \(endpoint): \(error.reason)")
        }
        let socket = try MigrationSocket(
            fd: connection.fd,
            peer: "\(endpoint)",
            timeout: timeout,
            credentials: WireSecurity.credentials,
            isServer: false
        )
        do {
            try socket.send(Self.magic)
        } catch {
            socket.close()
            throw error
        }
        return socket
    }

    func close() { self.transport.close() }

    // MARK: Frames

    func send(_ type: FrameType, _ payload: [UInt8] = []) throws {
        try self.send(self.header(type, UInt64(payload.count)) + payload)
    }

    func send<Value: Encodable>(_ type: FrameType, json value: Value) throws {
        try self.send(type, Array(try JSONEncoder().encode(value)))
    }

    /// A frame whose payload is `count` bytes at `bytes`, sent straight from there.
    func send(_ type: FrameType, from bytes: UnsafeRawBufferPointer, progress: (Int) -> Void = { _ in }) throws {
        try self.send(self.header(type, UInt64(bytes.count)))
        var offset = 0
        let chunk = 4 << 20
        while offset < bytes.count {
            let end = min(offset + chunk, bytes.count)
            try self.send(UnsafeRawBufferPointer(rebasing: bytes[offset..<end]))
            offset = end
            progress(offset)
        }
    }

    /// A `pages` frame: `bytes` (whole pages) at byte `offset` of the guest's memory, after the
    /// offset (8 bytes) and the bytes' CRC-32C (4 bytes). The caller keeps `bytes` still while it
    /// goes (a copy, when the guest runs on).
    func sendPages(at offset: Int, _ bytes: UnsafeRawBufferPointer) throws {
        let crc = ferry_crc32c(0, bytes.baseAddress, bytes.count)
        let prefix =
            (0..<8).reversed().map { UInt8(truncatingIfNeeded: UInt64(offset) >> (8 * UInt64($0))) }
            + (0..<4).reversed().map { UInt8(truncatingIfNeeded: crc >> (8 * UInt32($0))) }
        try self.send(self.header(.pages, UInt64(12 + bytes.count)) + prefix)
        try self.send(bytes)
    }

    /// The payload of a `pages` frame whose header came (`length` bytes in all), received
    /// straight into the guest's memory by `memory`, which is given the offset and the count and
    /// returns where to put them. Throws when the bytes do not match their checksum.
    func receivePages(
        length: Int,
        into memory: (_ offset: Int, _ count: Int) throws -> UnsafeMutableRawBufferPointer
    ) throws {
        guard length > 12 else { throw MigrationError.protocolViolation("a pages frame of \(length) bytes") }
        var prefix = [UInt8](repeating: 0, count: 12)
        try prefix.withUnsafeMutableBytes { try self.receive(into: $0) }
        let offset = prefix[0..<8].reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
        let expected = prefix[8..<12].reduce(UInt32(0)) { $0 << 8 | UInt32($1) }
        guard offset % 4096 == 0, (length - 12) % 4096 == 0, offset <= UInt64(Int32.max) * 2 else {
            throw MigrationError.protocolViolation("pages at \(offset) of \(length - 12) bytes from \(self.peer)")
        }
        let target = try memory(Int(offset), length - 12)
        guard try self.receive(into: target, checksum: true) == expected else {
            throw MigrationError.protocolViolation("pages at \(offset) from \(self.peer) do not match their checksum")
        }
    }

    /// Post-copy: asks for the page at byte `offset`.
    func sendWant(_ offset: Int) throws {
        try self.send(.want, (0..<8).reversed().map { UInt8(truncatingIfNeeded: UInt64(offset) >> (8 * UInt64($0))) })
    }

    /// The offset a `want` frame's payload names.
    static func wanted(_ payload: [UInt8]) throws -> Int {
        guard payload.count == 8 else {
            throw MigrationError.protocolViolation("a want frame of \(payload.count) bytes")
        }
        return Int(truncatingIfNeeded: payload.reduce(UInt64(0)) { $0 << 8 | UInt64($1) })
    }

    /// Whether a frame has come (some of it is there to read now).
    var hasInput: Bool { self.transport.hasInput }

    /// The next frame's type and length; its payload is read next.
    func receiveHeader() throws -> (FrameType, Int) {
        var header = [UInt8](repeating: 0, count: 9)
        try header.withUnsafeMutableBytes { try self.receive(into: $0) }
        guard let type = FrameType(rawValue: header[0]) else {
            if TLSRecord.begins(header[0], header[1]), self.transport is PlainMigrationTransport {
                throw MigrationError.transport(
                    "\(self.peer) speaks TLS and this process has no cluster credentials: "
                        + "give it the cluster's (--data-dir, FERRY_DATA_DIR or ~/.ferry; 'ferry ca issue NAME')"
                )
            }
            throw MigrationError.protocolViolation("frame of unknown type \(header[0]) from \(self.peer)")
        }
        let length = header[1...].reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
        guard length <= UInt64(Int.max) else {
            throw MigrationError.protocolViolation("frame of \(length) bytes from \(self.peer)")
        }
        return (type, Int(length))
    }

    /// A whole frame of one of `expected` types (at most ``maxFrameBytes``).
    func receive(_ expected: FrameType...) throws -> (FrameType, [UInt8]) {
        let (type, length) = try self.receiveHeader()
        guard expected.contains(type) else {
            throw MigrationError.protocolViolation(
                "expected \(expected.map(\.description).joined(separator: " or ")) from \(self.peer), got \(type)"
            )
        }
        guard length <= Self.maxFrameBytes else {
            throw MigrationError.protocolViolation("\(type) frame of \(length) bytes from \(self.peer) is too large")
        }
        var payload = [UInt8](repeating: 0, count: length)
        try payload.withUnsafeMutableBytes { try self.receive(into: $0) }
        return (type, payload)
    }

    func receive<Value: Decodable>(_ expected: FrameType, json type: Value.Type) throws -> Value {
        let (_, payload) = try self.receive(expected)
        do {
            return try JSONDecoder().decode(type, from: Data(payload))
        } catch {
            throw MigrationError.protocolViolation("a malformed \(expected) frame from \(self.peer): \(error)")
        }
    }

    private func header(_ type: FrameType, _ length: UInt64) -> [UInt8] {
        [type.rawValue] + (0..<8).reversed().map { UInt8(truncatingIfNeeded: length >> (8 * UInt64($0))) }
    }

    // MARK: Bytes

    func send(_ bytes: [UInt8]) throws {
        try bytes.withUnsafeBytes { try self.send($0) }
    }

    func send(_ bytes: UnsafeRawBufferPointer) throws {
        try self.transport.send(bytes)
        self.bytesSent += bytes.count
    }

    /// Fills `buffer` from the socket, and returns the CRC-32C of what came, computed a piece at
    /// a time as it comes (while the sender fills the socket with the next).
    func receive(into buffer: UnsafeMutableRawBufferPointer, checksum: Bool) throws -> UInt32 {
        var crc: UInt32 = 0
        var offset = 0
        let piece = 1 << 20
        while offset < buffer.count {
            let end = min(offset + piece, buffer.count)
            try self.receive(into: UnsafeMutableRawBufferPointer(rebasing: buffer[offset..<end]))
            if checksum { crc = ferry_crc32c(crc, buffer.baseAddress! + offset, end - offset) }
            offset = end
        }
        return crc
    }

    /// Fills `buffer` from the connection.
    func receive(into buffer: UnsafeMutableRawBufferPointer) throws {
        try self.transport.receive(into: buffer)
        self.bytesReceived += buffer.count
    }
}

/// Why a move failed, or was refused; the process carries on where it was.
public enum MigrationError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The connection failed or ended.
    case transport(String)
    /// The peer sent something the hand-over does not allow (garbage on the migration port).
    case protocolViolation(String)
    /// The target refused the process, with its reason.
    case refused(String)

    public var description: String {
        switch self {
        case .transport(let reason): reason
        case .protocolViolation(let reason): "not the migration protocol: \(reason)"
        case .refused(let reason): "the target refused the process: \(reason)"
        }
    }
}

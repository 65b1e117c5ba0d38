#if canImport(Glibc)
import Glibc
#endif

/// An IP address and port of a socket's end, as the kernel gave it: for logs, access control
/// (the superserver's `only_from`), source hashing and `X-Forwarded-For`.
public struct PeerAddress: Hashable, Sendable, CustomStringConvertible {
    /// The address's bytes in network order: 4 for IPv4, 16 for IPv6.
    public let bytes: [UInt8]
    public let port: Int

    public init(bytes: [UInt8], port: Int) {
        self.bytes = bytes
        self.port = port
    }

    /// The address in `storage`, or `nil` when it is not an IP address (a Unix socket's).
    public init?(_ storage: sockaddr_storage) {
        var storage = storage
        switch Int32(storage.ss_family) {
        case AF_INET:
            let (address, port) = withUnsafePointer(to: &storage) {
                $0.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { ($0.pointee.sin_addr, $0.pointee.sin_port) }
            }
            self.init(bytes: withUnsafeBytes(of: address) { Array($0) }, port: Int(UInt16(bigEndian: port)))
        case AF_INET6:
            let (address, port) = withUnsafePointer(to: &storage) {
                $0.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) {
                    ($0.pointee.sin6_addr, $0.pointee.sin6_port)
                }
            }
            self.init(bytes: withUnsafeBytes(of: address) { Array($0) }, port: Int(UInt16(bigEndian: port)))
        default:
            return nil
        }
    }

    /// Where the socket `fd` is connected to.
    public static func peer(of fd: Int32) -> PeerAddress? {
        Self.query(fd, getpeername)
    }

    /// Where the socket `fd` is bound (with the port the kernel picked for port 0).
    public static func local(of fd: Int32) -> PeerAddress? {
        Self.query(fd, getsockname)
    }

    /// The numeric host: dotted for IPv4, RFC 5952 text for IPv6.
    public var host: String { Self.host(of: self.bytes) }

    /// `HOST:PORT`, with an IPv6 host in brackets.
    public var description: String {
        self.bytes.count == 16 ? "[\(self.host)]:\(self.port)" : "\(self.host):\(self.port)"
    }

    /// An address's bytes as text; "unknown" for neither 4 nor 16 bytes.
    public static func host(of bytes: [UInt8]) -> String {
        let family = bytes.count == 4 ? AF_INET : AF_INET6
        var text = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
        guard bytes.count == 4 || bytes.count == 16, inet_ntop(family, bytes, &text, socklen_t(text.count)) != nil
        else { return "unknown" }
        return String(cString: text)
    }

    private static func query(
        _ fd: Int32,
        _ call: (Int32, UnsafeMutablePointer<sockaddr>, UnsafeMutablePointer<socklen_t>) -> Int32
    ) -> PeerAddress? {
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let result = withUnsafeMutablePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { call(fd, $0, &length) }
        }
        return result == 0 ? PeerAddress(storage) : nil
    }
}

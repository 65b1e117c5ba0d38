import CFerryLinux
import NIOCore

#if canImport(Glibc)
import Glibc
#endif

/// A socket bound to an endpoint, outside NIO: for the parts that hand descriptors to the
/// kernel's own machinery (the superserver's children, the switch's splice loops).
public enum BoundSocket {
    public struct Failure: Error, Equatable {
        public let reason: String
    }

    /// A socket bound to `endpoint` with SO_REUSEADDR, listening when it is a stream socket, and
    /// the endpoint with the port it got (port 0 asks for any).
    public static func open(
        _ endpoint: ServiceEndpoint,
        datagram: Bool = false,
        nonblocking: Bool = false,
        backlog: Int32 = 128
    ) throws(Failure) -> (fd: Int32, bound: ServiceEndpoint) {
        let address: SocketAddress
        do {
            address = try SocketAddress.makeAddressResolvingHost(endpoint.host, port: endpoint.port)
        } catch {
            throw Failure(reason: "\(error)")
        }
        let type = Int32((datagram ? SOCK_DGRAM : SOCK_STREAM).rawValue) | Int32(SOCK_CLOEXEC.rawValue)
        let fd = socket(address.protocol.rawValue, type | (nonblocking ? Int32(SOCK_NONBLOCK.rawValue) : 0), 0)
        guard fd >= 0 else { throw Failure(reason: String(cString: strerror(errno))) }
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        let bound = address.withSockAddr { pointer, size in Glibc.bind(fd, pointer, socklen_t(size)) }
        guard bound == 0, datagram || listen(fd, backlog) == 0 else {
            let reason = String(cString: strerror(errno))
            close(fd)
            throw Failure(reason: reason)
        }
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        _ = withUnsafeMutablePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        let port = Self.describe(storage)?.port ?? endpoint.port
        return (fd, ServiceEndpoint(host: endpoint.host, port: port))
    }

    /// The numeric host and the port of an address.
    public static func describe(_ storage: sockaddr_storage) -> (host: String, port: Int)? {
        var storage = storage
        var host = [CChar](repeating: 0, count: 64)
        let port = ferry_describe_address(&storage, &host, host.count)
        guard port >= 0 else { return nil }
        return (String(cString: host), Int(port))
    }
}

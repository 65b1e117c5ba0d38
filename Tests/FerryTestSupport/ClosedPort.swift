#if canImport(Glibc)
import Glibc
#endif

/// A loopback port that refuses connections for as long as this lives: bound, so that no other
/// test of a parallel run can take it, but not listening. A test of "nothing listens there"
/// cannot then reach a server that happened to get the port of one that closed.
public final class ClosedPort: @unchecked Sendable {
    // Sendable: immutable after init.
    public let port: Int
    private let descriptor: Int32

    public init() throws {
        (self.descriptor, self.port) = try bindLoopbackSocket()
    }

    deinit { close(self.descriptor) }
}

/// A TCP socket bound to a free loopback port, not yet listening: its descriptor and port.
public func bindLoopbackSocket() throws -> (descriptor: Int32, port: Int) {
    let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
    guard descriptor >= 0 else { throw TestFailure("socket: \(String(cString: strerror(errno)))") }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    let bound = withUnsafeMutablePointer(to: &address) { pointer in
        pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { address in
            bind(descriptor, address, length) == 0 && getsockname(descriptor, address, &length) == 0
        }
    }
    guard bound else {
        close(descriptor)
        throw TestFailure("binding a loopback port: \(String(cString: strerror(errno)))")
    }
    return (descriptor, Int(UInt16(bigEndian: address.sin_port)))
}

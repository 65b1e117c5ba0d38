#if canImport(Glibc)
import Glibc
#endif

/// The first address `getaddrinfo` gives for a host and port, copied out of its list: what a
/// socket is bound or connected to, the one way Ferry's code below NIO looks an address up.
public struct AddressLookup {
    public let family: Int32
    private var storage = sockaddr_storage()
    private let length: socklen_t

    /// Looks up `host:port` for sockets of `socketType` with `getaddrinfo`'s `flags`
    /// (`AI_NUMERICSERV` is always added).
    /// - Throws: ``PosixError`` with `operation` and `gai_strerror`'s reason.
    public init(host: String, port: Int, socketType: Int32, flags: Int32 = 0, operation: String) throws(PosixError) {
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = socketType
        hints.ai_flags = flags | AI_NUMERICSERV
        var list: UnsafeMutablePointer<addrinfo>?
        let status = getaddrinfo(host, String(port), &hints, &list)
        guard status == 0, let info = list else {
            throw PosixError(operation, reason: String(cString: gai_strerror(status)))
        }
        defer { freeaddrinfo(list) }
        self.family = info.pointee.ai_family
        self.length = info.pointee.ai_addrlen
        withUnsafeMutableBytes(of: &self.storage) { storage in
            storage.copyMemory(
                from: UnsafeRawBufferPointer(start: info.pointee.ai_addr, count: Int(info.pointee.ai_addrlen))
            )
        }
    }

    /// Calls `body` with the address as `bind` and `connect` take it.
    public func withSocketAddress<Result>(_ body: (UnsafePointer<sockaddr>, socklen_t) -> Result) -> Result {
        withUnsafeBytes(of: self.storage) { storage in
            body(storage.baseAddress!.assumingMemoryBound(to: sockaddr.self), self.length)
        }
    }
}

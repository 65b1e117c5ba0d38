import FerryEndpoints
import FerryPosix
import FerryWire
import NIOCore

#if canImport(Glibc)
import Glibc
#endif

/// `ferry endpoints [--addr HOST:PORT] lookup NAME`: one request on one blocking socket, through
/// TLS with the cluster's credentials when the command finds them (as its parser's command
/// would), printed as the command prints it. Anything else is left to the command parser, which
/// does it again and speaks for itself: other flags, a host name rather than an address,
/// credentials that do not load, a daemon that is not a member, a name the daemon does not hold,
/// a daemon that cannot be reached or has not answered within 2 s. A lookup changes nothing, so
/// asking twice is safe.
enum QuickLookup {
    /// How long to wait for the whole answer, connection and handshake included, before leaving
    /// it to the command (whose deadlines, 5 s to connect and 30 s to answer, are then the user's).
    static let patience = Duration.seconds(2)

    /// The lines to print, or nil to leave the command to the parser.
    ///
    /// - Parameter credentials: the directory the command would find cluster credentials in, if
    ///   any; asked only of a command of this form.
    static func answer(_ arguments: [String], credentials: () -> String?) -> String? {
        guard let (daemon, name) = Self.request(arguments) else { return nil }
        // As WireSecurity decides for the parser's command: TLS when there is a `cert.pem` (`load`
        // answers nil without one); credentials that do not load are the parser's to report.
        let secured: ClusterCredentials?
        do {
            secured = try credentials().flatMap(ClusterCredentials.load(from:))
        } catch {
            return nil
        }
        // As NIO does when the command makes its socket: a reader that left the pipe does not
        // kill the process, so the command's exit status stays the same on either path.
        signal(SIGPIPE, SIG_IGN)
        // An address, not a host name: the parser's command looks names up.
        guard
            let socket = try? BlockingSocket.connect(
                host: daemon.host,
                port: daemon.port,
                patience: .until(.now + Self.patience),
                numericHostOnly: true
            )
        else { return nil }
        defer { socket.close() }
        let stream: any BlockingStream
        if let secured {
            guard let tls = try? BlockingTLSClient(over: socket, credentials: secured) else { return nil }
            stream = tls
        } else {
            stream = socket
        }
        guard let entries = Self.lookUp(name, over: stream) else { return nil }
        return EndpointEntry.lines(entries)
    }

    /// The daemon and the name, for the one form answered here.
    static func request(_ arguments: [String]) -> (daemon: ServiceEndpoint, name: String)? {
        var rest = arguments[...]
        guard rest.popFirst() == "endpoints" else { return nil }
        var daemon = EndpointDaemon.defaultAddress
        if let flag = rest.first, flag == "--addr" || flag.hasPrefix("--addr=") {
            rest.removeFirst()
            let text = flag == "--addr" ? rest.popFirst() : String(flag.dropFirst("--addr=".count))
            guard let text, let parsed = ServiceEndpoint(text) else { return nil }
            daemon = parsed
        }
        guard rest.count == 2, rest.first == "lookup", let name = rest.last, !name.hasPrefix("-") else { return nil }
        return (daemon, name)
    }

    /// The daemon's entries for `name`; nil for an error answer or anything unexpected.
    static func lookUp(_ name: String, over connection: any BlockingStream) -> [EndpointEntry]? {
        let requestID: UInt64 = 1
        let request = Frame(LookupRequest(name: name), requestID: requestID)
        var bytes = ByteBuffer()
        request.write(to: &bytes)
        guard (try? bytes.withUnsafeReadableBytes { try connection.send($0) }) != nil,
            var head = Self.receive(FrameHeader.size, over: connection),
            let header = try? FrameHeader.read(from: &head, maxPayloadLength: EndpointLimits.maxPayloadLength),
            header.requestID == requestID, header.flags == .response,
            let payload = Self.receive(Int(header.payloadLength), over: connection)
        else { return nil }
        return try? Frame(header: header, payload: payload).decode(as: EndpointEntries.self).entries
    }

    private static func receive(_ count: Int, over connection: any BlockingStream) -> ByteBuffer? {
        var bytes = ByteBuffer()
        let received = try? bytes.writeWithUnsafeMutableBytes(minimumWritableBytes: count) { buffer in
            try connection.receive(into: UnsafeMutableRawBufferPointer(rebasing: buffer[..<count]))
            return count
        }
        return received == nil ? nil : bytes
    }
}

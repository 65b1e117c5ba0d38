import CFerryLinux
import FerryEndpoints
import FerryGuest
import FerryKV
import FerryPosix
import FerryServer
import Foundation
import NIOConcurrencyHelpers

#if canImport(Glibc)
import Glibc
#endif

/// What one process is lent on its node: the node's own facilities (bound by type), the
/// cluster's key-value service (bound by identifier: found at the endpoint daemon by its name,
/// `kv`, on whichever node the process is), and its connections to other hosts, which a move
/// re-establishes at the target to the same addresses (or refuses, when the target cannot
/// reach them).
final class ProcessServices: GuestNodeServices, @unchecked Sendable {
    // Sendable: the node's parts are Sendable; the connections and keys are guarded by `state`.

    /// An open connection: the socket and the address it reaches.
    struct Connection: Codable, Sendable, Equatable {
        var handle: Int32
        var address: String
        var fd: Int32 = -1

        enum CodingKeys: String, CodingKey { case handle, address }
    }

    private let local: NodeLocalSpace
    private let kv: ClusterKV
    private let data: NodeDataSets
    private let state = NIOLockedValueBox<(connections: [Int32: Connection], next: Int32, keys: Set<String>)>(
        ([:], 3, [])
    )

    init(local: NodeLocalSpace, kv: ClusterKV, data: NodeDataSets) {
        self.local = local
        self.kv = kv
        self.data = data
    }

    func dataRead(_ name: String, offset: Int, capacity: Int) -> [UInt8]? {
        self.data.read(name, offset: offset, capacity: capacity)
    }

    var nodeName: String { self.local.nodeName }
    func localGet(_ key: String) -> [UInt8]? { self.local.localGet(key) }
    func localPut(_ key: String, _ value: [UInt8]) throws { try self.local.localPut(key, value) }

    func kvGet(_ key: String) throws -> [UInt8]? {
        self.state.withLockedValue { _ = $0.keys.insert(key) }
        return try self.kv.get(key)
    }

    func kvPut(_ key: String, _ value: [UInt8]) throws {
        self.state.withLockedValue { _ = $0.keys.insert(key) }
        try self.kv.put(key, value)
    }

    /// The kv keys the process has used, for `ferry ps --resources`.
    var keys: [String] { self.state.withLockedValue { $0.keys.sorted() } }

    // MARK: Connections

    func connect(_ address: String) throws -> Int32 {
        let fd = try Self.open(address)
        return self.state.withLockedValue { state in
            let handle = state.next
            state.next += 1
            state.connections[handle] = Connection(handle: handle, address: address, fd: fd)
            return handle
        }
    }

    func send(_ handle: Int32, _ bytes: [UInt8]) throws -> Int {
        let fd = try self.fd(handle)
        let sent = bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        guard sent >= 0 else { throw GuestServiceUnavailable("send: \(String(cString: strerror(errno)))") }
        return sent
    }

    func receive(_ handle: Int32, capacity: Int) throws -> [UInt8] {
        let fd = try self.fd(handle)
        var bytes = [UInt8](repeating: 0, count: capacity)
        let got = bytes.withUnsafeMutableBytes { recv(fd, $0.baseAddress, capacity, 0) }
        guard got >= 0 else { throw GuestServiceUnavailable("recv: \(String(cString: strerror(errno)))") }
        return Array(bytes.prefix(got))
    }

    func close(_ handle: Int32) {
        guard let connection = self.state.withLockedValue({ $0.connections.removeValue(forKey: handle) }) else {
            return
        }
        Glibc.close(connection.fd)
    }

    /// The open connections, for a move to re-establish.
    var connections: [Connection] {
        self.state.withLockedValue { $0.connections.values.sorted { $0.handle < $1.handle } }
    }

    /// Connects again to every address of `connections`, under the same handles; refuses (and
    /// opens nothing) when one cannot be reached from here.
    func reestablish(_ connections: [Connection], keys: [String]) throws {
        var opened: [Connection] = []
        for var connection in connections {
            do {
                connection.fd = try Self.open(connection.address)
            } catch {
                for open in opened { Glibc.close(open.fd) }
                throw ProcessError(
                    "it holds a connection to \(connection.address), which node \(self.nodeName) cannot reach (\(error)); a connection only its node can reach cannot move"
                )
            }
            opened.append(connection)
        }
        self.state.withLockedValue { state in
            for connection in opened { state.connections[connection.handle] = connection }
            state.next = max(state.next, (opened.map(\.handle).max() ?? 2) + 1)
            state.keys.formUnion(keys)
        }
    }

    /// Closes every connection (the process ended here, or left).
    func closeAll() {
        let all = self.state.withLockedValue { state in
            defer { state.connections = [:] }
            return Array(state.connections.values)
        }
        for connection in all { Glibc.close(connection.fd) }
    }

    private func fd(_ handle: Int32) throws -> Int32 {
        guard let fd = self.state.withLockedValue({ $0.connections[handle]?.fd }) else {
            throw GuestServiceUnavailable("no connection \(handle)")
        }
        return fd
    }

    /// A blocking TCP connection to `address`, with 30-second reads and writes.
    static func open(_ address: String) throws -> Int32 {
        guard let endpoint = ServiceEndpoint(address) else {
            throw GuestServiceUnavailable("'\(address)' is not HOST:PORT")
        }
        do {
            return try BlockingSocket.connect(
                host: endpoint.host,
                port: endpoint.port,
                patience: .eachCall(.seconds(30))
            )
            .fd
        } catch {
            // Whoever reports it names the address already.
            throw GuestServiceUnavailable(error.reason)
        }
    }
}

/// The cluster's key-value service as a node reaches it: found at the endpoint daemon by name,
/// connected on first use, and found again when the connection fails.
final class ClusterKV: Sendable {
    private let claims: ExclusiveClaims
    private let client = NIOLockedValueBox<KVClient?>(nil)

    init(claims: ExclusiveClaims) { self.claims = claims }

    func get(_ key: String) throws -> [UInt8]? {
        try self.use { try await $0.get(key) }
    }

    func put(_ key: String, _ value: [UInt8]) throws {
        _ = try self.use { try await $0.put(key, value) }
    }

    private func use<Result: Sendable>(_ body: @escaping @Sendable (KVClient) async throws -> Result) throws -> Result {
        try Blocking.wait {
            let client = try await self.connected()
            do {
                return try await body(client)
            } catch {
                self.client.withLockedValue { $0 = nil }
                await client.close()
                throw error
            }
        }
    }

    private func connected() async throws -> KVClient {
        if let client = self.client.withLockedValue({ $0 }) { return client }
        guard let endpoint = try await self.claims.client().lookup("kv").first?.endpoints.first else {
            throw GuestServiceUnavailable("no service named 'kv' at the endpoint daemon")
        }
        let client = try await KVClient.connect(host: endpoint.host, port: endpoint.port)
        self.client.withLockedValue { $0 = client }
        return client
    }
}

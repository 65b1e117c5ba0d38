import FerryWire

/// Where names are registered under leases and looked up: the embedded endpoint daemon
/// (``EndpointClient``) or an etcd cluster (``EtcdRegistry``). Both keep the same rules, and one
/// test suite holds both to them: a registration lives while its lease is renewed; the same name
/// at the same endpoints replaces the earlier one; a registration with
/// ``EndpointTable/exclusiveKey`` is refused (`held`) while another live one at other endpoints
/// exists, unless ``EndpointTable/takeoverKey`` names that one's lease; a lease no longer held
/// is refused (`notHeld`) on renewal; a name with no registration is `notFound`.
public protocol Registry: Sendable {
    func register(
        _ name: String,
        endpoints: [ServiceEndpoint],
        metadata: [String: String],
        ttl: Duration
    ) async throws -> EndpointLease
    func renew(_ lease: EndpointLease, timeout: Duration) async throws -> EndpointLease
    func deregister(_ lease: EndpointLease) async throws
    func lookup(_ name: String) async throws -> [EndpointEntry]
    func list(prefix: String) async throws -> [EndpointEntry]
    /// The entries of `name` now, then again after every change.
    func watch(_ name: String) -> AsyncThrowingStream<EndpointEntries, any Error>
    /// Whether calls can still go through this value (a daemon's connection may have closed).
    var isActive: Bool { get }
    func close() async
}

extension EndpointClient: Registry {}

extension Registry {
    /// Every registration.
    public func list() async throws -> [EndpointEntry] {
        try await self.list(prefix: "")
    }

    public func renew(_ lease: EndpointLease) async throws -> EndpointLease {
        try await self.renew(lease, timeout: .seconds(30))
    }
}

import FerryEndpoints
import ServiceLifecycle

/// What every switch is to its owner: it runs on its own threads from the moment it is made,
/// and as a service it stops at graceful shutdown.
public protocol SwitchService: Service {
    /// Where it listens.
    var address: ServiceEndpoint { get }
    var balancer: Balancer { get }
    /// Stops accepting and closes what the switch holds.
    func stop()
    /// Stops accepting and lets what is established finish: the switch a reload replaces.
    func retire()
}

extension SwitchService {
    public func run() async throws {
        try? await gracefulShutdown()
        self.stop()
    }
}

extension TransportSwitch: SwitchService {}
extension HandoffSwitch: SwitchService {}
extension HTTPSwitch: SwitchService {}

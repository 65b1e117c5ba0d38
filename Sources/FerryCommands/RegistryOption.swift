import ArgumentParser
import FerryEndpoints

/// `--registry etcd://HOST:PORT[,HOST:PORT...]`: keep names in an etcd cluster instead of the
/// endpoint daemon that the command's own flag (`--endpoints` or `--addr`) names.
struct RegistryOption: ParsableArguments {
    @Option(
        help: ArgumentHelp(
            "Keep names in this etcd cluster instead of the endpoint daemon.",
            valueName: "etcd://HOST:PORT[,HOST:PORT...]"
        ),
        transform: parseEtcdRegistry
    )
    var registry: RegistryAddress?

    /// etcd when `--registry` names it, else the endpoint daemon at `daemon`.
    func address(or daemon: ServiceEndpoint) -> RegistryAddress {
        self.registry ?? .daemon(daemon)
    }
}

/// Parses `--registry`: an etcd cluster's members (the daemon has a flag of its own).
func parseEtcdRegistry(_ text: String) throws -> RegistryAddress {
    guard text.hasPrefix("etcd://"), let registry = RegistryAddress(text) else {
        throw ValidationError("--registry takes etcd://HOST:PORT[,HOST:PORT...], got '\(text)'")
    }
    return registry
}

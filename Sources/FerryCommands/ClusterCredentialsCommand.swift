import ArgumentParser
import FerryWire

/// A command that says where its cluster's credentials are (its data directory's, or given).
protocol ClusterCredentialsCommand {
    var credentialsDirectory: String? { get }
}

/// `--data-dir` on a command that connects to a cluster: the credentials are in its `tls/`.
struct DataDirectoryOption: ParsableArguments {
    @Option(
        help: ArgumentHelp(
            "The cluster's data directory; its tls/ holds the credentials (default: FERRY_DATA_DIR, else ~/.ferry).",
            valueName: "DIR"
        )
    )
    var dataDir: String?

    var credentialsDirectory: String? { self.dataDir.map { ClusterCredentials.directory(inDataDirectory: $0) } }
}

extension FerryCommand {
    /// Runs the command named on the command line with this process's FerryWire credentials set:
    /// those its flags name, else FERRY_DATA_DIR's, else ~/.ferry's; none where none are found.
    public static func main() async {
        do {
            var command = try Self.parseAsRoot()
            // `ferry` and `ferry help` print the help, as `--help` does, whatever the credentials.
            let printsHelp = command is FerryCommand || type(of: command).configuration.commandName == "help"
            let explicit = (command as? any ClusterCredentialsCommand)?.credentialsDirectory
            if let up = command as? Up, let explicit { try up.makeCredentialsIfMissing(in: explicit) }
            if !printsHelp { try WireSecurity.bootstrap(explicit: explicit) }
            if var asynchronous = command as? any AsyncParsableCommand {
                try await asynchronous.run()
            } else {
                try command.run()
            }
        } catch {
            Self.exit(withError: error)
        }
    }
}

// The client commands: each takes --data-dir, on itself or on the command it belongs to.

extension CallCommand: ClusterCredentialsCommand {
    var credentialsDirectory: String? { self.data.credentialsDirectory }
}
extension ObjectsCommand.List: ClusterCredentialsCommand {
    var credentialsDirectory: String? { self.data.credentialsDirectory }
}
extension ObjectsCommand.Relocate: ClusterCredentialsCommand {
    var credentialsDirectory: String? { self.data.credentialsDirectory }
}

extension ControlCommand.Cancel: ClusterCredentialsCommand {
    var credentialsDirectory: String? { self.control.data.credentialsDirectory }
}
extension ControlCommand.Stats: ClusterCredentialsCommand {
    var credentialsDirectory: String? { self.control.data.credentialsDirectory }
}

extension KVCommand.Get: ClusterCredentialsCommand {
    var credentialsDirectory: String? { self.kv.data.credentialsDirectory }
}
extension KVCommand.Put: ClusterCredentialsCommand {
    var credentialsDirectory: String? { self.kv.data.credentialsDirectory }
}
extension KVCommand.Delete: ClusterCredentialsCommand {
    var credentialsDirectory: String? { self.kv.data.credentialsDirectory }
}
extension KVCommand.CompareAndSet: ClusterCredentialsCommand {
    var credentialsDirectory: String? { self.kv.data.credentialsDirectory }
}
extension KVCommand.List: ClusterCredentialsCommand {
    var credentialsDirectory: String? { self.kv.data.credentialsDirectory }
}

extension EndpointsCommand.Register: ClusterCredentialsCommand {
    var credentialsDirectory: String? { self.endpoints.data.credentialsDirectory }
}
extension EndpointsCommand.Lookup: ClusterCredentialsCommand {
    var credentialsDirectory: String? { self.endpoints.data.credentialsDirectory }
}
extension EndpointsCommand.List: ClusterCredentialsCommand {
    var credentialsDirectory: String? { self.endpoints.data.credentialsDirectory }
}
extension EndpointsCommand.Watch: ClusterCredentialsCommand {
    var credentialsDirectory: String? { self.endpoints.data.credentialsDirectory }
}

// The commands that find the cluster at its endpoint daemon (DaemonOption) take it there.

extension SpawnCommand: ClusterCredentialsCommand {
    var credentialsDirectory: String? { self.cluster.data.credentialsDirectory }
}
extension PsCommand: ClusterCredentialsCommand {
    var credentialsDirectory: String? { self.cluster.data.credentialsDirectory }
}
extension WaitCommand: ClusterCredentialsCommand {
    var credentialsDirectory: String? { self.cluster.data.credentialsDirectory }
}
extension KillCommand: ClusterCredentialsCommand {
    var credentialsDirectory: String? { self.cluster.data.credentialsDirectory }
}
extension LogsCommand: ClusterCredentialsCommand {
    var credentialsDirectory: String? { self.cluster.data.credentialsDirectory }
}
extension MigrateCommand: ClusterCredentialsCommand {
    var credentialsDirectory: String? { self.cluster.data.credentialsDirectory }
}
extension EvalCommand: ClusterCredentialsCommand {
    var credentialsDirectory: String? { self.cluster.data.credentialsDirectory }
}
extension SendCommand: ClusterCredentialsCommand {
    var credentialsDirectory: String? { self.cluster.data.credentialsDirectory }
}
extension DataCommand.Load: ClusterCredentialsCommand {
    var credentialsDirectory: String? { self.cluster.data.credentialsDirectory }
}
extension LearnCommand: ClusterCredentialsCommand {
    var credentialsDirectory: String? { self.cluster.data.credentialsDirectory }
}

import ArgumentParser
import FerryPosix
import Logging

/// `ferry`: the command-line interface. Commands live in this library so tests can parse and
/// run them without spawning a process.
public struct FerryCommand: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "ferry",
        abstract: "A runtime for distributed processes: servers, nodes and the parts between them.",
        subcommands: [
            Up.self, Serve.self, ControlCommand.self, EndpointDaemonCommand.self, EndpointsCommand.self, KVCommand.self,
            SuperserverCommand.self, GuestCommand.self, SwitchCommand.self, CallCommand.self, ObjectsCommand.self,
            NodeCommand.self, SpawnCommand.self, PsCommand.self, WaitCommand.self, KillCommand.self, LogsCommand.self,
            SendCommand.self,
            MigrateCommand.self, EvalCommand.self, KeysCommand.self, SignCommand.self, VerifyCommand.self,
            DataCommand.self, LearnCommand.self, EdgeCommand.self, RedirectorCommand.self, ContainerCommand.self,
            FetchCommand.self, CACommand.self,
        ]
    )

    public init() {}

    /// Sets up logging to standard error, at the level in `FERRY_LOG_LEVEL` (default `info`).
    /// Called once, by the executable.
    public static func bootstrapLogging() {
        let level = ProcessEnvironment.value("FERRY_LOG_LEVEL").flatMap(Logger.Level.init(rawValue:)) ?? .info
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
    }
}

import Logging
import UnixSignals

/// Reloading a configuration file on SIGHUP, as nginx, HAProxy and inetd do: a file that cannot
/// be used is refused with its reason and the running configuration stays.
public struct HangupReload: Sendable {
    public let path: String
    private let signals: UnixSignalsSequence

    /// Traps SIGHUP from now on. Call it before telling anyone the part is up: until then a
    /// SIGHUP would end the process.
    public init(path: String) async {
        self.path = path
        self.signals = await UnixSignalsSequence(trapping: .sighup)
    }

    /// Calls `reload` with the file's path on every SIGHUP until the task is cancelled.
    public func run(logger: Logger, _ reload: (String) throws -> Void) async {
        for await _ in self.signals {
            do {
                try reload(self.path)
            } catch {
                logger.error("reload refused, the running configuration stays: \(error)")
            }
        }
    }
}

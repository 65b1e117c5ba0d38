import Logging
import ServiceLifecycle
import UnixSignals

/// SIGTERM and SIGINT, trapped from the moment a long-running command makes this. Such a command
/// prints `listening on` before its services run; a signal that came in between would end the
/// process at once (status 143) instead of stopping it gracefully, as one did under a loaded CI.
struct ShutdownSignals {
    private let signals: UnixSignalsSequence

    /// Traps the signals from now on: make it before binding and printing anything.
    init() async {
        self.signals = await UnixSignalsSequence(trapping: .sigterm, .sigint)
    }

    /// Runs `services` until they end or the first signal, which shuts them down gracefully.
    func run(_ services: [any Service], logger: Logger) async throws {
        let group = ServiceGroup(services: services, logger: logger)
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask {
                for await _ in self.signals {
                    await group.triggerGracefulShutdown()
                    return
                }
            }
            try await group.run()
            tasks.cancelAll()
        }
    }
}

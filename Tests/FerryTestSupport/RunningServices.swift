import Logging
import ServiceLifecycle

/// Runs `services` in a service group for the duration of `body`, then shuts them down
/// gracefully (also when `body` throws): the one harness for servers a test runs in process.
public func withRunning<T>(
    _ services: [any Service],
    logger: Logger = TestLog.logger(),
    _ body: () async throws -> T
) async throws -> T {
    let group = ServiceGroup(services: services, logger: logger)
    return try await withThrowingTaskGroup(of: Void.self) { tasks in
        tasks.addTask { try await group.run() }
        do {
            let result = try await body()
            await group.triggerGracefulShutdown()
            try await tasks.waitForAll()
            return result
        } catch {
            await group.triggerGracefulShutdown()
            try? await tasks.waitForAll()
            throw error
        }
    }
}

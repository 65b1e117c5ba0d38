import FerryServer
import FerryTestSupport
import Logging
import Metrics
import ServiceLifecycle

#if canImport(Glibc)
import Glibc
#endif

/// Runs a file server for the duration of `body`, then shuts it down gracefully.
func withFileServer<T>(
    _ configuration: FileServer.Configuration,
    metrics: any MetricsFactory = MetricsSystem.factory,
    _ body: (FileServer) async throws -> T
) async throws -> T {
    let logger = TestLog.logger()
    let server = try await FileServer.bind(configuration, logger: logger, metricsFactory: metrics)
    let group = ServiceGroup(services: [server], logger: logger)
    return try await withThrowingTaskGroup(of: Void.self) { tasks in
        tasks.addTask { try await group.run() }
        do {
            let result = try await body(server)
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

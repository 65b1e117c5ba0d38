import FerryServer
import FerryTestSupport
import Metrics

#if canImport(Glibc)
import Glibc
#endif

/// Runs a file server for the duration of `body`, then shuts it down gracefully.
func withFileServer<T>(
    _ configuration: FileServer.Configuration,
    metrics: any MetricsFactory = MetricsSystem.factory,
    _ body: (FileServer) async throws -> T
) async throws -> T {
    let server = try await FileServer.bind(configuration, logger: TestLog.logger(), metricsFactory: metrics)
    return try await withRunning([server]) { try await body(server) }
}

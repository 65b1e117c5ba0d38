import FerryEndpoints
import Hummingbird
import Logging
import NIOCore
import ServiceLifecycle

/// The control API, dashboard and `/metrics` of one Ferry process, on Hummingbird.
///
/// ``start(host:port:reader:token:kv:logger:)`` returns once the port is bound, so the caller can
/// print and register the address; the server then runs until ``run()`` sees graceful shutdown.
public final class ConsoleServer: Service, Sendable {
    public let address: ServiceEndpoint
    private let task: Task<Void, any Error>

    private init(address: ServiceEndpoint, task: Task<Void, any Error>) {
        self.address = address
        self.task = task
    }

    /// Binds `host:port` (0 picks a free port) and starts serving.
    ///
    /// - Throws: when the port cannot be bound.
    public static func start(
        host: String,
        port: Int,
        reader: ClusterReader,
        token: String,
        kv: (@Sendable () throws -> KVView)? = nil,
        logger: Logger
    ) async throws -> ConsoleServer {
        let (bound, continuation) = AsyncStream<Result<Int, any Error>>.makeStream()
        let application = Application(
            router: ConsoleAPI.router(reader: reader, token: token, kv: kv),
            configuration: .init(address: .hostname(host, port: port), serverName: "ferry"),
            onServerRunning: { channel in
                continuation.yield(.success(channel.localAddress?.port ?? port))
            },
            logger: Self.quiet(logger)
        )
        let task = Task {
            do {
                try await application.runService(gracefulShutdownSignals: [])
            } catch {
                continuation.yield(.failure(error))
                throw error
            }
            continuation.finish()
        }
        for await result in bound {
            switch result {
            case .success(let port):
                return ConsoleServer(address: ServiceEndpoint(host: host, port: port), task: task)
            case .failure(let error):
                throw ConsoleError.unavailable("cannot serve the control API on \(host):\(port): \(error)")
            }
        }
        throw ConsoleError.unavailable("the control API on \(host):\(port) stopped before it was bound")
    }

    public func run() async throws {
        try? await gracefulShutdown()
        self.task.cancel()
        _ = await self.task.result
    }

    /// Hummingbird logs every request at info; a dashboard that polls would fill the node's log.
    private static func quiet(_ logger: Logger) -> Logger {
        var logger = logger
        logger.logLevel = max(logger.logLevel, .warning)
        return logger
    }
}

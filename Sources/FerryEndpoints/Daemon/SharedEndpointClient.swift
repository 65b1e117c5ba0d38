import Logging
import NIOConcurrencyHelpers

/// One connection to a registry (an endpoint daemon, or etcd), opened on first use and again after
/// it drops, shared by every caller: concurrent first uses wait for the same connect.
public final class SharedEndpointClient: Sendable {
    public let registry: RegistryAddress
    private let logger: Logger
    private let current = NIOLockedValueBox<Task<any Registry, any Error>?>(nil)

    public init(registry: RegistryAddress, logger: Logger) {
        self.registry = registry
        self.logger = logger
    }

    /// The open connection, connecting when there is none.
    public func client() async throws -> any Registry {
        let task: Task<any Registry, any Error> = self.current.withLockedValue { current in
            if let task = current { return task }
            let task = Task { [registry, logger] in
                try await registry.connect(logger: logger)
            }
            current = task
            return task
        }
        do {
            let client = try await task.value
            if client.isActive { return client }
        } catch {
            self.reset(task)
            throw error
        }
        self.reset(task)
        return try await self.client()
    }

    /// Forgets the connection (it failed), so the next use connects anew.
    public func reset() {
        let task = self.current.withLockedValue { current in
            defer { current = nil }
            return current
        }
        if let task { Task { await (try? await task.value)?.close() } }
    }

    private func reset(_ task: Task<any Registry, any Error>) {
        self.current.withLockedValue { current in
            if current == task { current = nil }
        }
    }

    public func close() async {
        let task = self.current.withLockedValue { current in
            defer { current = nil }
            return current
        }
        await (try? await task?.value)?.close()
    }
}

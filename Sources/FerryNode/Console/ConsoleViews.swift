import FerryKV
import FerryMigration
import FerryWire
import Foundation

/// What the control API answers, with the field names the README documents. Every view is a
/// reading taken when asked; nothing here is kept.

/// `GET /api/v1/cluster`: the nodes and services registered at the endpoint daemon.
public struct ClusterView: Codable, Sendable, Equatable {
    public var daemon: String
    public var nodes: [NodeView]
    public var services: [ServiceView]
}

/// One `ferry node`: where it is, whether its registration is alive, and the load it publishes.
public struct NodeView: Codable, Sendable, Equatable {
    public var name: String
    public var address: String
    /// Its control API and dashboard, when it serves one.
    public var http: String?
    /// Its registration's lease is alive (a node that stopped renewing drops out within the lease).
    public var healthy: Bool
    public var leaseRemainingMilliseconds: Int
    public var runQueue: Int
    public var processes: Int
    public var memoryBytes: Int
    /// CPUs in use, measured over the last second, against `cpus`, its budget.
    public var cpuUse: Double
    public var cpus: Double

    enum CodingKeys: String, CodingKey {
        case name, address, http, healthy, processes, cpus
        case leaseRemainingMilliseconds = "lease_remaining_ms"
        case runQueue = "run_queue"
        case memoryBytes = "memory_bytes"
        case cpuUse = "cpu_use"
    }
}

/// Any other registration: a name, its endpoints and what it says of itself.
public struct ServiceView: Codable, Sendable, Equatable {
    public var name: String
    public var endpoints: [String]
    public var metadata: [String: String]
}

/// `GET /api/v1/switch`: the front switch's backends.
public struct SwitchView: Codable, Sendable, Equatable {
    public var control: String
    public var backends: [BackendView]
}

/// One backend of the switch, as HAProxy's stats page shows a server.
public struct BackendView: Codable, Sendable, Equatable {
    public var address: String
    public var group: String
    public var weight: Int
    /// `up`, `down` (failing its health checks) or `draining`.
    public var state: String
    /// Connections open now.
    public var open: Int
    public var total: Int
    public var failures: Int
    /// Requests per second since the previous reading.
    public var rate: Double
    /// Its answers' latency (l7), a moving average.
    public var latencyMilliseconds: Double

    enum CodingKeys: String, CodingKey {
        case address, group, weight, state, open, total, failures, rate
        case latencyMilliseconds = "latency_ms"
    }
}

/// `GET /api/v1/kv`: the key-value service of this process.
public struct KVView: Codable, Sendable, Equatable {
    public var address: String
    public var path: String
    public var keys: Int
    public var fileBytes: Int

    enum CodingKeys: String, CodingKey {
        case address, path, keys
        case fileBytes = "file_bytes"
    }

    /// Read now off the kv service of this process.
    /// `ferry up`'s service, whose store is a SQLite file.
    public init(reading server: KVServer) throws {
        guard let store = server.store as? KVStore else {
            throw ConsoleError.unavailable("the key-value service's store is not a local file")
        }
        self.address = "\(server.host):\(server.port)"
        self.path = store.path
        self.keys = try store.count()
        self.fileBytes = (try? FileManager.default.attributesOfItem(atPath: store.path)[.size] as? Int) ?? 0
    }
}

/// A move started through the API, while it runs and after it ends.
public struct MoveView: Codable, Sendable, Equatable {
    public var process: String
    public var to: String
    public var mode: String
    public var sentBytes: Int
    public var totalBytes: Int
    /// `moving`, `moved` or `failed`.
    public var state: String
    public var detail: String?

    enum CodingKeys: String, CodingKey {
        case process, to, mode, state, detail
        case sentBytes = "sent_bytes"
        case totalBytes = "total_bytes"
    }
}

/// What the dashboard receives every second (`GET /api/v1/events`, server-sent events).
public struct ConsoleSnapshot: Codable, Sendable {
    public var cluster: ClusterView
    public var processes: [ProcessSummary]
    public var objects: [ObjectStatus]
    public var switchView: SwitchView?
    public var moves: [MoveView]
    /// Parts that could not be read this time, with the reason.
    public var errors: [String]

    enum CodingKeys: String, CodingKey {
        case cluster, processes, objects, moves, errors
        case switchView = "switch"
    }
}

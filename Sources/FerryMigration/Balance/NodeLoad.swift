import Foundation

/// A node's load: what it publishes at the endpoint daemon every second (in the metadata of its
/// `node:NAME` registration) and answers when a balancer asks it directly (`NodeRequest.load`).
public struct NodeLoad: Codable, Sendable, Equatable {
    public var node: String
    /// Processes ready to run on its guest scheduler (not waiting for a message).
    public var runQueue: Int
    /// Processes it runs, waiting ones included.
    public var processes: Int
    /// The linear memory its processes hold.
    public var memoryBytes: Int
    /// The CPUs it may use: its `--cpus` quota, or its guest threads (at most the machine's).
    public var cpuBudget: Double
    /// The share of that budget it used over the last second, 0 to 1.
    public var cpuUse: Double
    /// Kernel threads that run its guests.
    public var threads: Int

    enum CodingKeys: String, CodingKey {
        case node, processes, threads
        case runQueue = "runq"
        case memoryBytes = "memory_bytes"
        case cpuBudget = "cpus"
        case cpuUse = "cpu_use"
    }

    public init(
        node: String,
        runQueue: Int,
        processes: Int,
        memoryBytes: Int,
        cpuBudget: Double,
        cpuUse: Double,
        threads: Int
    ) {
        self.node = node
        self.runQueue = runQueue
        self.processes = processes
        self.memoryBytes = memoryBytes
        self.cpuBudget = cpuBudget
        self.cpuUse = cpuUse
        self.threads = threads
    }

    /// Runnable processes per CPU: how loaded it is, comparable across nodes of other sizes.
    public var perCPU: Double { Double(self.runQueue) / self.cpuBudget }

    /// The CPUs one process gets when `runnable` processes share the node: one at most (a
    /// process runs on one thread at a time), and its share of the threads and of the budget.
    public func speed(runnable: Int) -> Double {
        let sharing = Double(max(1, runnable))
        return min(1, Double(self.threads) / sharing, self.cpuBudget / sharing)
    }

    /// As the registration's metadata carries it (strings).
    public var metadata: [String: String] {
        [
            "runq": String(self.runQueue),
            "processes": String(self.processes),
            "memory": String(self.memoryBytes),
            "cpus": String(format: "%.2f", self.cpuBudget),
            "cpu_use": String(format: "%.2f", self.cpuUse),
            "threads": String(self.threads),
        ]
    }

    /// Read back from a `node:NAME` registration; nil when it carries no load (an older node).
    public init?(node: String, metadata: [String: String]) {
        guard let runQueue = metadata["runq"].flatMap(Int.init), let budget = metadata["cpus"].flatMap(Double.init),
            budget > 0
        else { return nil }
        self.init(
            node: node,
            runQueue: runQueue,
            processes: metadata["processes"].flatMap(Int.init) ?? runQueue,
            memoryBytes: metadata["memory"].flatMap(Int.init) ?? 0,
            cpuBudget: budget,
            cpuUse: metadata["cpu_use"].flatMap(Double.init) ?? 0,
            threads: metadata["threads"].flatMap(Int.init) ?? 1
        )
    }
}

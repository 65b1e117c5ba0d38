import Foundation

/// When a process should move for the sake of load, and which: the balancer's rules, on plain
/// figures, so that they are tested without nodes.
///
/// A node is over its threshold when it has more runnable processes per CPU than the cluster has
/// on average, and under it when it has fewer. A move must pay for itself (Dask's rule that
/// moving work must cost less than the compute it saves; MOSIX's opportunity cost): its cost is
/// the process's memory over the bandwidth measured on earlier moves, plus a fixed setup; its
/// gain is the time the process saves by running at the speed it would get at the target rather
/// than here, over the work it has left. That work is unknown; a process that has run for `t`
/// is expected to run for about `t` more (Harchol-Balter and Downey's finding on process
/// lifetimes), so long-running processes are the ones worth moving and a fresh one is worth
/// little. A move never leaves the target more loaded than the source (its gain would be nil),
/// so two nodes cannot trade a process back and forth; a process that just arrived settles
/// before it moves again, and does not go back where it came from for a while.
public struct BalancePolicy: Sendable {
    /// A move must save this many times what it costs.
    public var payback: Double = 2
    /// A process that arrived by a move less than this ago stays where it is.
    public var settle: Duration = .seconds(2)
    /// ...and does not go back to the node it came from for this long.
    public var noReturn: Duration = .seconds(10)
    /// Work, in CPU seconds, expected of a process that has barely run.
    public var minimumRemaining: Double = 0.1

    public init() {}

    /// A process that might move, as its node sees it.
    public struct Candidate: Sendable, Equatable {
        public var name: String
        public var memoryBytes: Int
        /// CPU time it has had, here and on the nodes it came from.
        public var cpuSeconds: Double
        /// Whether it is ready to run (a process waiting for a message gains nothing by moving).
        public var runnable: Bool
        /// Spawned with `--pin`: it never moves.
        public var pinned: Bool
        /// How long it has been on this node.
        public var resident: Duration
        /// The node it came from, when it arrived by a move.
        public var cameFrom: String?

        public init(
            name: String,
            memoryBytes: Int,
            cpuSeconds: Double,
            runnable: Bool = true,
            pinned: Bool = false,
            resident: Duration = .seconds(60),
            cameFrom: String? = nil
        ) {
            self.name = name
            self.memoryBytes = memoryBytes
            self.cpuSeconds = cpuSeconds
            self.runnable = runnable
            self.pinned = pinned
            self.resident = resident
            self.cameFrom = cameFrom
        }
    }

    /// A move that pays, with its figures.
    public struct Move: Sendable, Equatable {
        public var process: String
        /// CPU seconds it is expected to need still.
        public var remaining: Double
        /// Seconds it is expected to finish sooner at the target.
        public var gain: Double
        /// Seconds the move is expected to take.
        public var cost: Double
        public var memoryBytes: Int
    }

    public enum Decision: Sendable, Equatable {
        case move(Move)
        /// Nothing moves, and why.
        case stay(String)
    }

    /// Sender-initiated: the node to offer work to, when `own` is over its threshold (the
    /// cluster's mean runnable processes per CPU): the least loaded other node, if one more
    /// process would not take it over the threshold.
    public func target(for own: NodeLoad, among loads: [NodeLoad]) -> NodeLoad? {
        let mean = Self.mean(loads, own)
        guard own.runQueue > 0, own.perCPU > mean + Self.epsilon,
            let target = loads.filter({ $0.node != own.node }).min(by: { $0.perCPU < $1.perCPU }),
            Self.withOneMore(target) <= mean + Self.epsilon
        else { return nil }
        return target
    }

    /// Receiver-initiated: the node to ask for work, when `own` is under its threshold and one
    /// more process would not take it over: the most loaded other node that is over it.
    public func source(for own: NodeLoad, among loads: [NodeLoad]) -> NodeLoad? {
        let mean = Self.mean(loads, own)
        guard Self.withOneMore(own) <= mean + Self.epsilon else { return nil }
        return loads.filter { $0.node != own.node && $0.runQueue > 0 && $0.perCPU > mean + Self.epsilon }
            .max { $0.perCPU < $1.perCPU }
    }

    /// Runnable processes per CPU over the whole cluster, `own` counted with its live figures.
    static func mean(_ loads: [NodeLoad], _ own: NodeLoad) -> Double {
        let all = loads.filter { $0.node != own.node } + [own]
        let budget = all.reduce(0) { $0 + $1.cpuBudget }
        return budget > 0 ? Double(all.reduce(0) { $0 + $1.runQueue }) / budget : 0
    }

    /// A node's runnable processes per CPU once it takes one more.
    static func withOneMore(_ load: NodeLoad) -> Double { Double(load.runQueue + 1) / load.cpuBudget }

    static let epsilon = 1e-9

    /// The process of `source` whose move to `target` pays best, or why none moves.
    ///
    /// - Parameters:
    ///   - bandwidth: bytes per second that the memory of earlier moves went at.
    ///   - setup: seconds a move takes besides its memory (hold, connect, state, commit), as
    ///     measured on earlier moves.
    public func choose(
        from source: NodeLoad,
        to target: NodeLoad,
        candidates: [Candidate],
        bandwidth: Double,
        setup: Double = 0.005
    ) -> Decision {
        let here = source.speed(runnable: source.runQueue)
        let there = target.speed(runnable: target.runQueue + 1)
        let figures = "\(Self.describe(source)) here, \(Self.describe(target)) at \(target.node)"
        guard there > here else {
            return .stay("a process would run no faster at \(target.node): \(figures)")
        }
        let movable = candidates.filter { candidate in
            guard candidate.runnable, !candidate.pinned else { return false }
            guard let cameFrom = candidate.cameFrom else { return true }
            return candidate.resident >= self.settle && !(cameFrom == target.node && candidate.resident < self.noReturn)
        }
        guard !movable.isEmpty else {
            return .stay(
                "no process here may move now (\(candidates.count) in all: pinned, waiting for a message, or just arrived); \(figures)"
            )
        }
        let moves = movable.map { candidate in
            let remaining = max(candidate.cpuSeconds, self.minimumRemaining)
            return Move(
                process: candidate.name,
                remaining: remaining,
                gain: remaining / here - remaining / there,
                cost: setup + Double(candidate.memoryBytes) / max(bandwidth, 1),
                memoryBytes: candidate.memoryBytes
            )
        }
        let best = moves.max { $0.gain - $0.cost < $1.gain - $1.cost }!
        guard best.gain >= self.payback * best.cost else {
            return .stay(
                String(
                    format: "no move pays: the best, '%@', would save %.3f s and cost %.3f s; %@",
                    best.process,
                    best.gain,
                    best.cost,
                    figures
                )
            )
        }
        return .move(best)
    }

    static func describe(_ load: NodeLoad) -> String {
        String(format: "%d runnable on %.2f CPU", load.runQueue, load.cpuBudget)
    }
}

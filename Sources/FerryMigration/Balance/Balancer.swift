import FerryEndpoints
import Foundation
import Logging
import NIOConcurrencyHelpers

/// Load-driven migration on one node (`ferry node --balance`): every quarter second it reads every
/// node's load from the endpoint daemon and, by ``BalancePolicy``, offers work to the least
/// loaded node when this one is over its threshold (sender-initiated), or asks the most loaded
/// node for work when this one is under it (receiver-initiated). Each move is decided on live
/// figures, asked of the other node just before, and is a strong move: the process goes on at
/// its next instruction. Every decision is logged with its figures; a decision not to move is
/// logged when its reason changes.
public final class Balancer: Sendable {
    public enum Mode: String, Sendable, CaseIterable, Codable {
        case off, sender, receiver, both

        var sends: Bool { self == .sender || self == .both }
        var receives: Bool { self == .receiver || self == .both }
    }

    public let mode: Mode
    let host: ProcessHost
    let policy: BalancePolicy
    /// How often it looks.
    let interval: Duration
    /// Moves one look may make: enough to spread a burst of spawns in a few looks.
    static let movesPerLook = 12
    private let logger: Logger
    private let state = NIOLockedValueBox(State())

    private struct State {
        /// Bytes per second the memory of earlier moves went at (the measured bandwidth).
        var bandwidth: Double = 200e6
        /// Seconds earlier moves took besides their memory.
        var setup: Double = 0.01
        /// Processes whose move failed, and until when they are not tried again.
        var refused: [String: ContinuousClock.Instant] = [:]
        /// The last reason not to move, logged once.
        var lastStay = ""
    }

    public init(
        host: ProcessHost,
        mode: Mode,
        policy: BalancePolicy = BalancePolicy(),
        interval: Duration = .milliseconds(250),
        logger: Logger
    ) {
        self.host = host
        self.mode = mode
        self.policy = policy
        self.interval = interval
        self.logger = logger
    }

    /// Looks and moves until cancelled; returns at once when balancing is off.
    public func run() async {
        guard self.mode != .off else { return }
        self.logger.info("balancing: \(self.mode.rawValue)-initiated moves, every \(self.interval)")
        while !Task.isCancelled {
            try? await Task.sleep(for: self.interval)
            await self.look()
        }
    }

    /// One look at the cluster: the moves this node should start now.
    func look() async {
        var loads = await self.publishedLoads()
        guard !loads.isEmpty else { return }
        for _ in 0..<Self.movesPerLook {
            let own = self.host.load()
            if self.mode.sends, let target = self.policy.target(for: own, among: loads) {
                guard let live = await self.ask(target.node) else { return }
                loads.update(live)
                guard self.policy.target(for: self.host.load(), among: loads)?.node == live.node else { continue }
                guard await self.send(to: live) else { return }
                loads.update(await self.ask(live.node) ?? live)
            } else if self.mode.receives, let source = self.policy.source(for: own, among: loads) {
                guard await self.askForWork(from: source) else { return }
                loads.update(await self.ask(source.node) ?? source)
            } else {
                return
            }
        }
    }

    // MARK: Sender-initiated

    /// Moves this node's best candidate to `target` if the move pays; whether one moved.
    private func send(to target: NodeLoad) async -> Bool {
        switch self.decide(to: target) {
        case .stay(let reason):
            self.stayed(reason)
            return false
        case .move(let move):
            return await self.carryOut(move, to: target, initiative: "sender") != nil
        }
    }

    // MARK: Receiver-initiated

    /// Asks `source` to send this node work; whether a process came.
    private func askForWork(from source: NodeLoad) async -> Bool {
        guard let endpoint = await self.endpoint(of: source.node) else { return false }
        do {
            let client = try await NodeClient.connect(to: endpoint, timeout: .seconds(2))
            defer { Task { await client.close() } }
            switch try await client.request(
                .giveWork(to: self.host.node, load: self.host.load()),
                timeout: .seconds(60)
            ) {
            case .report(let report):
                self.learn(from: report)
                self.logger.info(
                    "balance: took '\(report.process)' from \(source.node) (receiver-initiated) in \(Self.milliseconds(report.totalMilliseconds))"
                )
                return true
            case .declined(let reason):
                self.stayed("\(source.node) gives no work: \(reason)")
            default:
                break
            }
        } catch {
            self.stayed("cannot ask \(source.node) for work: \(error)")
        }
        return false
    }

    /// The source's side of a receiver-initiated move (`NodeRequest.giveWork`): sends the best
    /// candidate to `node`, whose load is `load`, if the move pays.
    public func give(to node: String, load: NodeLoad) async -> NodeReply {
        guard self.mode != .off else { return .declined("balancing is off on \(self.host.node)") }
        switch self.decide(to: load) {
        case .stay(let reason):
            return .declined(reason)
        case .move(let move):
            guard let report = await self.carryOut(move, to: load, initiative: "receiver") else {
                return .declined("the move of '\(move.process)' failed (see \(self.host.node)'s log)")
            }
            return .report(report)
        }
    }

    // MARK: Deciding and moving

    private func decide(to target: NodeLoad) -> BalancePolicy.Decision {
        let (bandwidth, setup, refused) = self.state.withLockedValue { state in
            let now = ContinuousClock.now
            state.refused = state.refused.filter { $0.value > now }
            return (state.bandwidth, state.setup, Set(state.refused.keys))
        }
        let candidates = self.host.balanceCandidates().filter { !refused.contains($0.name) }
        return self.policy.choose(
            from: self.host.load(),
            to: target,
            candidates: candidates,
            bandwidth: bandwidth,
            setup: setup
        )
    }

    private func carryOut(_ move: BalancePolicy.Move, to target: NodeLoad, initiative: String) async -> MoveReport? {
        let own = self.host.load()
        self.logger.info(
            "balance: moving '\(move.process)' to \(target.node) (\(initiative)-initiated): \(BalancePolicy.describe(own)) here, \(BalancePolicy.describe(target)) there; \(String(format: "%.2f", move.remaining)) CPU s of work expected, gain \(String(format: "%.3f", move.gain)) s, cost \(String(format: "%.3f", move.cost)) s (\(move.memoryBytes) bytes at \(String(format: "%.0f", self.bandwidth / 1e6)) MB/s after \(Self.milliseconds(self.setup * 1000)) of setup)"
        )
        do {
            let report = try await self.host.migrate(
                move.process,
                to: target.node,
                mode: .strong,
                initiative: initiative
            )
            self.learn(from: report)
            self.state.withLockedValue { $0.lastStay = "" }
            self.logger.info(
                "balance: '\(move.process)' moved to \(target.node) in \(Self.milliseconds(report.totalMilliseconds)) (\(report.bytesSent) bytes, down \(Self.milliseconds(report.downtimeMilliseconds)))"
            )
            return report
        } catch {
            self.state.withLockedValue { $0.refused[move.process] = .now + .seconds(30) }
            self.logger.warning("balance: '\(move.process)' did not move to \(target.node): \(error)")
            return nil
        }
    }

    var bandwidth: Double { self.state.withLockedValue { $0.bandwidth } }
    var setup: Double { self.state.withLockedValue { $0.setup } }

    /// Folds a move's figures into the estimates of bandwidth and setup.
    private func learn(from report: MoveReport) {
        let memory = (report.phases["memory"] ?? 0) / 1000
        let setup = max(0, report.totalMilliseconds / 1000 - memory)
        self.state.withLockedValue { state in
            state.setup = 0.7 * state.setup + 0.3 * setup
            // Small memories say more of the setup than of the link.
            if report.memoryBytes >= 1 << 20, memory > 0 {
                state.bandwidth = 0.7 * state.bandwidth + 0.3 * Double(report.memoryBytes) / memory
            }
        }
    }

    private func stayed(_ reason: String) {
        let changed = self.state.withLockedValue { state in
            defer { state.lastStay = reason }
            return state.lastStay != reason
        }
        if changed { self.logger.info("balance: nothing moves: \(reason)") }
    }

    // MARK: Other nodes

    /// Every node's load as published at the endpoint daemon, this node's live.
    private func publishedLoads() async -> [NodeLoad] {
        guard let entries = try? await self.host.claims.client().list(prefix: "node:") else { return [] }
        var loads = entries.compactMap { NodeLoad(node: String($0.name.dropFirst(5)), metadata: $0.metadata) }
        loads.update(self.host.load())
        return loads
    }

    /// A node's load now, asked of it; nil when it cannot be reached.
    private func ask(_ node: String) async -> NodeLoad? {
        guard let endpoint = await self.endpoint(of: node) else { return nil }
        do {
            let client = try await NodeClient.connect(to: endpoint, timeout: .seconds(2))
            defer { Task { await client.close() } }
            guard case .load(let load) = try await client.request(.load, timeout: .seconds(5)) else { return nil }
            return load
        } catch {
            self.stayed("cannot ask \(node) for its load: \(error)")
            return nil
        }
    }

    private func endpoint(of node: String) async -> ServiceEndpoint? {
        try? await self.host.claims.client().lookup("node:\(node)").first?.endpoints.first
    }

    static func milliseconds(_ value: Double) -> String { String(format: "%.1f ms", value) }
}

extension [NodeLoad] {
    /// Replaces the node's entry with `load`, or adds it.
    mutating func update(_ load: NodeLoad) {
        if let index = self.firstIndex(where: { $0.node == load.node }) {
            self[index] = load
        } else {
            self.append(load)
        }
    }
}

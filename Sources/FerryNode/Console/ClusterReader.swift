import FerryEndpoints
import FerryMigration
import FerryPosix
import FerryServer
import FerrySwitch
import FerryWire
import Foundation
import Logging

/// Reads the cluster for the control API: the nodes and services from the endpoint daemon, each
/// node's processes and objects from the node itself, the switch from its control socket; and
/// carries out the API's actions the way the commands do (`ferry migrate`, `ferry kill`,
/// `ferry switch drain`). It keeps only what a rate needs (the switch's previous totals) and the
/// moves it started, so a dashboard can show their progress.
public actor ClusterReader {
    public let registry: RegistryAddress
    /// The switch's control socket when this process knows it; else the `web` registration's.
    private let switchControl: String?
    private var lastTotals: [String: (total: Int, at: ContinuousClock.Instant)] = [:]
    private var moves: [String: MoveView] = [:]

    public init(registry: RegistryAddress, switchControl: String? = nil) {
        self.registry = registry
        self.switchControl = switchControl
    }

    // MARK: Readings

    public func cluster() async throws -> ClusterView {
        let entries = try await self.withDaemon { try await $0.list() }
        var nodes: [NodeView] = []
        var services: [ServiceView] = []
        for entry in entries.sorted(by: { $0.name < $1.name }) {
            if entry.name.hasPrefix("node:") {
                let name = String(entry.name.dropFirst("node:".count))
                let load = NodeLoad(node: name, metadata: entry.metadata)
                nodes.append(
                    NodeView(
                        name: name,
                        address: entry.endpoints.first.map { "\($0)" } ?? "",
                        http: entry.metadata["http"],
                        healthy: entry.remainingMilliseconds > 0,
                        leaseRemainingMilliseconds: Int(entry.remainingMilliseconds),
                        runQueue: load?.runQueue ?? 0,
                        processes: load?.processes ?? 0,
                        memoryBytes: load?.memoryBytes ?? 0,
                        cpuUse: load?.cpuUse ?? 0,
                        cpus: load?.cpuBudget ?? 0
                    )
                )
            } else if !entry.name.hasPrefix("process:"), !entry.name.hasPrefix("object:") {
                services.append(
                    ServiceView(name: entry.name, endpoints: entry.endpoints.map { "\($0)" }, metadata: entry.metadata)
                )
            }
        }
        return ClusterView(daemon: self.registry.text, nodes: nodes, services: services)
    }

    /// Every node's processes, asked of all nodes at once; a node that does not answer within
    /// two seconds is named in the error and left out.
    public func processes() async throws -> (processes: [ProcessSummary], errors: [String]) {
        let nodes = try await self.withDaemon { try await $0.list(prefix: "node:") }
        return await withTaskGroup(of: Result<[ProcessSummary], ConsoleError>.self) { group in
            for entry in nodes {
                guard let endpoint = entry.endpoints.first else { continue }
                group.addTask {
                    do {
                        let client = try await NodeClient.connect(to: endpoint, timeout: .seconds(2))
                        defer { Task { await client.close() } }
                        guard case .processes(let list) = try await client.request(.list, timeout: .seconds(2)) else {
                            return .success([])
                        }
                        return .success(list)
                    } catch {
                        return .failure(.unavailable("\(entry.name) at \(endpoint) did not answer: \(error)"))
                    }
                }
            }
            var all: [ProcessSummary] = []
            var errors: [String] = []
            for await result in group {
                switch result {
                case .success(let list): all += list
                case .failure(let error): errors.append(error.message)
                }
            }
            return (all.sorted { ($0.node, $0.name) < ($1.node, $1.name) }, errors)
        }
    }

    /// Every object of every object node.
    public func objects() async throws -> [ObjectStatus] {
        let nodes: [ServiceEndpoint]
        do {
            nodes = try await self.withDaemon { try await $0.lookup(ObjectNames.nodes) }.flatMap(\.endpoints)
        } catch let error as ErrorMessage where error.code == .notFound {
            return []
        }
        var all: [ObjectStatus] = []
        for node in nodes {
            let wire = try await WireClient.connect(
                host: node.host,
                port: node.port,
                maxPayloadLength: ObjectLimits.maxPayloadLength
            )
            defer { Task { await wire.close() } }
            all += try await wire.call(ObjectList(), timeout: .seconds(2)).decode(as: ObjectListing.self).objects
        }
        return all.sorted { $0.object < $1.object }
    }

    /// The switch's backends, with each one's request rate since the previous reading.
    public func switchView() async throws -> SwitchView {
        let control = try await self.findSwitchControl()
        let answer = try await self.askSwitch("stats", at: control)
        guard let stats = try? JSONDecoder().decode(SwitchControl.Stats.self, from: Data(answer.utf8)) else {
            throw ConsoleError.unavailable("the switch at \(control) answered stats with something else: \(answer)")
        }
        let now = ContinuousClock.now
        let backends = stats.backends.map { backend -> BackendView in
            var rate = 0.0
            if let last = self.lastTotals[backend.address] {
                let seconds = (now - last.at).inSeconds
                if seconds > 0 { rate = Double(max(0, backend.total - last.total)) / seconds }
            }
            self.lastTotals[backend.address] = (backend.total, now)
            return BackendView(
                address: backend.address,
                group: backend.group.isEmpty ? "default" : backend.group,
                weight: backend.weight,
                state: backend.draining ? "draining" : backend.up ? "up" : "down",
                open: backend.active,
                total: backend.total,
                failures: backend.failures,
                rate: (rate * 10).rounded() / 10,
                latencyMilliseconds: backend.latencyMilliseconds ?? 0
            )
        }
        return SwitchView(control: control, backends: backends)
    }

    /// The moves started through this API, newest last.
    public func recentMoves() -> [MoveView] { self.moves.values.sorted { $0.process < $1.process } }

    /// All of it at once, for the dashboard: what cannot be read is named in `errors`.
    public func snapshot() async -> ConsoleSnapshot {
        var errors: [String] = []
        let cluster: ClusterView
        do {
            cluster = try await self.cluster()
        } catch {
            cluster = ClusterView(daemon: self.registry.text, nodes: [], services: [])
            errors.append("\(error)")
        }
        var processes: [ProcessSummary] = []
        do {
            let reading = try await self.processes()
            processes = reading.processes
            errors += reading.errors
        } catch {
            errors.append("\(error)")
        }
        var objects: [ObjectStatus] = []
        do { objects = try await self.objects() } catch { errors.append("objects: \(error)") }
        var switchView: SwitchView?
        do {
            switchView = try await self.switchView()
        } catch ConsoleError.notFound {
            // No switch in this cluster: nothing to show.
        } catch {
            errors.append("switch: \(error)")
        }
        return ConsoleSnapshot(
            cluster: cluster,
            processes: processes,
            objects: objects,
            switchView: switchView,
            moves: self.recentMoves(),
            errors: errors
        )
    }

    // MARK: Actions

    /// `drain` or `ready` a backend of the switch; answers the switch's own words.
    public func setBackend(_ address: String, draining: Bool) async throws -> String {
        let control = try await self.findSwitchControl()
        return try await self.askSwitch("\(draining ? "drain" : "ready") \(address)", at: control)
    }

    /// Stops process `name` (or forgets it, once ended), wherever it runs.
    public func kill(_ name: String) async throws {
        let client = try await self.connect(to: try await self.holder(of: name))
        defer { Task { await client.close() } }
        do {
            _ = try await client.request(.kill(name))
        } catch let error as ErrorMessage {
            throw ConsoleError.conflict(error.message)
        }
    }

    /// Moves process `name` to node `to`, keeping its progress for the dashboard as it goes.
    public func migrate(_ name: String, to target: String, mode: MoveMode) async throws -> MoveReport {
        guard self.moves[name]?.state != "moving" else {
            throw ConsoleError.conflict("'\(name)' is moving already")
        }
        let nodes = try await self.withDaemon { try await $0.list(prefix: "node:") }
        guard nodes.contains(where: { $0.name == "node:\(target)" }) else {
            let known = nodes.map { String($0.name.dropFirst("node:".count)) }.sorted()
            throw ConsoleError.badRequest(
                "no node named '\(target)'; the nodes are: \(known.joined(separator: ", "))"
            )
        }
        let client = try await self.connect(to: try await self.holder(of: name))
        defer { Task { await client.close() } }
        self.moves[name] = MoveView(
            process: name,
            to: target,
            mode: mode.rawValue,
            sentBytes: 0,
            totalBytes: 0,
            state: "moving"
        )
        do {
            for try await reply in client.stream(.migrate(name, to: target, mode: mode)) {
                switch reply {
                case .progress(let sent, let total):
                    self.moves[name]?.sentBytes = sent
                    self.moves[name]?.totalBytes = total
                case .report(let report):
                    self.moves[name]?.state = "moved"
                    self.moves[name]?.sentBytes = report.bytesSent
                    self.moves[name]?.totalBytes = report.bytesSent
                    return report
                default:
                    break
                }
            }
            throw ConsoleError.unavailable("the node holding '\(name)' closed the move without a report")
        } catch {
            self.moves[name]?.state = "failed"
            self.moves[name]?.detail = "\(error)"
            if let error = error as? ErrorMessage { throw ConsoleError.conflict(error.message) }
            throw error
        }
    }

    // MARK: Helpers

    private func withDaemon<T: Sendable>(_ body: (any Registry) async throws -> T) async throws -> T {
        let client: any Registry
        do {
            client = try await self.registry.connect(logger: Logger(label: "ferry.console"))
        } catch {
            throw ConsoleError.unavailable("cannot reach \(self.registry): \(error)")
        }
        defer { Task { await client.close() } }
        return try await body(client)
    }

    private func holder(of name: String) async throws -> ServiceEndpoint {
        do {
            guard
                let endpoint = try await self.withDaemon({ try await $0.lookup("process:\(name)") }).first?.endpoints
                    .first
            else { throw ConsoleError.notFound("no process named '\(name)'") }
            return endpoint
        } catch let error as ErrorMessage where error.code == .notFound {
            throw ConsoleError.notFound("no process named '\(name)' in the cluster")
        }
    }

    private func connect(to endpoint: ServiceEndpoint) async throws -> NodeClient {
        do {
            return try await NodeClient.connect(to: endpoint, timeout: .seconds(2))
        } catch {
            throw ConsoleError.unavailable("\(error)")
        }
    }

    private func findSwitchControl() async throws -> String {
        if let control = self.switchControl { return control }
        let web: [EndpointEntry]
        do {
            web = try await self.withDaemon { try await $0.lookup("web") }
        } catch let error as ErrorMessage where error.code == .notFound {
            throw ConsoleError.notFound("no switch is registered at \(self.registry) (as 'web')")
        }
        guard let control = web.first?.metadata["control"] else {
            throw ConsoleError.notFound("the switch registered as 'web' names no control socket")
        }
        return control
    }

    private func askSwitch(_ line: String, at control: String) async throws -> String {
        let answer: String
        do {
            answer = try await ControlSocket.request(line, at: control, runningCommand: "ferry up")
        } catch {
            throw ConsoleError.unavailable("\(error)")
        }
        if answer.hasPrefix("error: no backend") { throw ConsoleError.notFound(String(answer.dropFirst(7))) }
        if answer.hasPrefix("error: ") { throw ConsoleError.badRequest(String(answer.dropFirst(7))) }
        return answer
    }
}

/// Why an API request failed, and the HTTP status that says so.
public enum ConsoleError: Error, CustomStringConvertible, Sendable {
    case badRequest(String)
    case notFound(String)
    case conflict(String)
    case unavailable(String)

    public var message: String {
        switch self {
        case .badRequest(let message), .notFound(let message), .conflict(let message), .unavailable(let message):
            return message
        }
    }

    public var status: Int {
        switch self {
        case .badRequest: return 400
        case .notFound: return 404
        case .conflict: return 409
        case .unavailable: return 503
        }
    }

    public var description: String { self.message }
}

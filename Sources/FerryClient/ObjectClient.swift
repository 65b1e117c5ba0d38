import FerryEndpoints
import FerryPosix
import FerryWire
import Logging
import NIOConcurrencyHelpers
import NIOCore

/// Client middleware for objects: binds names to the nodes where objects are active, keeps one
/// connection per node for all calls, and makes a call look local — it re-binds when an object
/// has moved (forward or stale epoch), retries what may be retried until the call's deadline,
/// and gives every call an id so that a retry is never run twice.
public final class ObjectClient: Sendable {
    /// Where names are looked up; nil when the client talks to one node directly.
    public let registry: RegistryAddress?
    private let endpoints: SharedEndpointClient?
    private let directNode: ServiceEndpoint?
    /// The loop every connection to a node runs on, when the client was given one.
    public let eventLoop: (any EventLoop)?
    private let clientID = UInt64.random(in: 1...UInt64.max)
    private let state = NIOLockedValueBox(State())
    private let logger: Logger

    private struct State {
        var sequence: UInt64 = 0
        var bindings: [String: ObjectBinding] = [:]
        var connections: [String: Task<WireClient, any Error>] = [:]
    }

    /// A client that binds names at the endpoint daemon at `daemon`.
    public convenience init(
        daemon: ServiceEndpoint,
        eventLoop: (any EventLoop)? = nil,
        logger: Logger = Logger(label: "ferry.client")
    ) {
        self.init(registry: .daemon(daemon), eventLoop: eventLoop, logger: logger)
    }

    /// A client that binds names at `registry` (an endpoint daemon, or etcd).
    ///
    /// - Parameter eventLoop: the loop all connections to nodes run on; any of the shared group's
    ///   if nil. Callers that run on it (`withTaskExecutorPreference(EventLoopTaskExecutor(loop))`)
    ///   send and receive without a thread hop, as gRPC's callback API does.
    public init(
        registry: RegistryAddress,
        eventLoop: (any EventLoop)? = nil,
        logger: Logger = Logger(label: "ferry.client")
    ) {
        self.registry = registry
        self.endpoints = SharedEndpointClient(registry: registry, logger: logger)
        self.directNode = nil
        self.eventLoop = eventLoop
        self.logger = logger
    }

    /// A client that calls the objects of one node, without a daemon; `eventLoop` as for
    /// ``init(registry:eventLoop:logger:)``.
    public init(
        node: ServiceEndpoint,
        eventLoop: (any EventLoop)? = nil,
        logger: Logger = Logger(label: "ferry.client")
    ) {
        self.registry = nil
        self.endpoints = nil
        self.directNode = node
        self.eventLoop = eventLoop
        self.logger = logger
    }

    /// A reference to the object `name`: no lookup happens until the first call.
    ///
    /// - Parameter deadline: how long each call may take, retries included.
    public func reference(_ name: String, deadline: Duration = .seconds(10)) -> ObjectReference {
        ObjectReference(client: self, target: .one(name), deadline: deadline)
    }

    /// A group of `replicas` objects named `NAME/1` ... `NAME/N` called as one, under `policy`.
    public func group(
        _ name: String,
        replicas: Int,
        policy: ReplicationPolicy,
        deadline: Duration = .seconds(10)
    ) -> ObjectReference {
        ObjectReference(
            client: self,
            target: .group((1...max(replicas, 1)).map { "\(name)/\($0)" }, policy),
            deadline: deadline
        )
    }

    /// The binding a name has now, if it was bound.
    public func binding(of name: String) -> ObjectBinding? {
        self.state.withLockedValue { $0.bindings[name] }
    }

    /// Closes every connection.
    public func close() async {
        let connections = self.state.withLockedValue { state in
            defer { state.connections = [:] }
            return Array(state.connections.values)
        }
        for connection in connections { await (try? await connection.value)?.close() }
        await self.endpoints?.close()
    }

    // MARK: Calls

    /// Calls `method` of `name` once, as seen from the caller: however many attempts it takes.
    func call(
        _ name: String,
        method: String,
        arguments: ObjectValue,
        idempotent: Bool,
        deadline: Duration
    ) async throws -> ObjectValue {
        let callID = self.state.withLockedValue { state in
            state.sequence += 1
            return CallID(client: self.clientID, sequence: state.sequence)
        }
        // Refused here rather than by the node, and without closing the connection other calls share.
        let size = arguments.encodedSize
        guard size <= ObjectLimits.maxArgumentBytes else {
            throw ErrorMessage(
                code: .tooLarge,
                message:
                    "the arguments of \(name).\(method) take \(size) bytes; the limit is \(ObjectLimits.maxArgumentBytes)"
            )
        }
        let deadline = min(deadline, ObjectLimits.maxCallDeadline)
        let end = ContinuousClock.now + deadline
        var failedNodes: Set<String> = []
        // A call that was sent and may have run is only repeated at the same node (whose ledger
        // answers a repeat from memory), unless the method is idempotent.
        var pinned: String?
        var attempt = 0
        var forwardsInARow = 0
        var lastError: (any Error)?
        while ContinuousClock.now < end {
            if attempt > 0 {
                try await Task.sleep(for: min(.milliseconds(5) * (1 << min(attempt, 6)), .milliseconds(200)))
            }
            attempt += 1
            let binding: ObjectBinding
            do {
                binding = try await self.bind(name, avoiding: failedNodes)
            } catch let error as ErrorMessage where error.code == .notFound {
                throw error
            } catch let error as WireClientError where error.isRefusal {
                throw error
            } catch {
                lastError = error
                continue
            }
            if let pinned, binding.node != pinned {
                throw ObjectCallError.outcomeUnknown(
                    object: name,
                    method: method,
                    reason: "\(lastError.map { "\($0)" } ?? "")"
                )
            }
            let remaining = end - ContinuousClock.now
            guard remaining > .zero else { break }
            let request = ObjectCall(
                object: name,
                method: method,
                epoch: binding.epoch,
                callID: callID,
                deadlineMilliseconds: UInt32(clamping: max(remaining.wholeMilliseconds, 1)),
                arguments: arguments
            )
            let frame: Frame
            do {
                let connection = try await self.connection(binding.host, binding.port)
                frame = try await connection.call(request, timeout: .nanoseconds(Int64(remaining.wholeNanoseconds)))
            } catch let error as WireClientError where error.isRefusal {
                throw error
            } catch let error as WireClientError {
                lastError = error
                self.forget(name, node: binding.node)
                let unknown = ObjectCallError.outcomeUnknown(object: name, method: method, reason: "\(error)")
                if case .cannotConnect = error {
                    if pinned != nil { throw unknown }
                    failedNodes.insert(binding.node)
                    continue
                }
                // Sent, and perhaps run: an idempotent call may go elsewhere; any other is
                // repeated once at the same node, whose ledger knows whether it ran.
                if idempotent {
                    failedNodes.insert(binding.node)
                } else {
                    if pinned != nil { throw unknown }
                    pinned = binding.node
                }
                continue
            }
            do {
                switch try frame.decode(as: ObjectResult.self).outcome {
                case .value(let value, let epoch):
                    forwardsInARow = 0
                    var bound = binding
                    bound.epoch = epoch
                    self.state.withLockedValue { $0.bindings[name] = bound }
                    return value
                case .forward(let next):
                    self.logger.debug("'\(name)' is at \(next) now; re-binding")
                    self.state.withLockedValue { $0.bindings[name] = next }
                    // A forward means the call did not run at that node (its ledger would have
                    // answered), so a call pinned there may follow it.
                    if pinned == binding.node { pinned = nil }
                    // Follow a forward at once, unless it leads to a node that failed (its claim
                    // has not run out yet) or forwards keep coming: then back off.
                    forwardsInARow += 1
                    if !failedNodes.contains(next.node), forwardsInARow <= 3 { attempt = 0 }
                    continue
                }
            } catch let error as ErrorMessage {
                lastError = error
                switch error.code {
                case .staleEpoch:
                    // Not run; bind again at once (the object was re-activated or moved), unless
                    // it keeps happening: then back off.
                    self.forget(name, node: binding.node)
                    forwardsInARow += 1
                    if forwardsInARow <= 3 { attempt = 0 }
                case .held:
                    // Another node's claim ran out a moment ago; it is free on the next try.
                    continue
                case .unavailable where idempotent, .segmentFailed where idempotent:
                    continue
                default:
                    throw error
                }
            }
        }
        throw ObjectCallError.deadlineExceeded(
            object: name,
            method: method,
            deadline: deadline,
            lastError: lastError.map { "\($0)" }
        )
    }

    /// The binding to call `name` at: cached, or looked up — the node that holds the object, or
    /// else a node that hosts its type (the same one each time, unless it failed).
    private func bind(_ name: String, avoiding failed: Set<String>) async throws -> ObjectBinding {
        if let binding = self.state.withLockedValue({ $0.bindings[name] }), !failed.contains(binding.node) {
            return binding
        }
        if let node = self.directNode {
            return ObjectBinding(object: name, host: node.host, port: node.port, epoch: 0)
        }
        let registry = try await self.endpoints!.client()
        if let entry = try await Self.lookup(registry, ObjectNames.claim(name)).first,
            let endpoint = entry.endpoints.first,
            !failed.contains(endpoint.description)
        {
            // Epoch 0: the registry knows the claim, not the activation; the first answer tells the epoch.
            let binding = ObjectBinding(object: name, host: endpoint.host, port: endpoint.port, epoch: 0)
            self.state.withLockedValue { $0.bindings[name] = binding }
            return binding
        }
        let type = ObjectNames.type(of: name)
        let hosts = try await Self.lookup(registry, ObjectNames.hosts(type)).flatMap(\.endpoints).filter {
            !failed.contains($0.description)
        }
        guard !hosts.isEmpty else {
            if !failed.isEmpty {
                throw ObjectCallError.noNode(object: name, reason: "every node that hosts '\(type)' failed")
            }
            throw ErrorMessage(
                code: .notFound,
                message:
                    "no object named '\(name)': no node registered at \(self.registry!) hosts type '\(type)'"
            )
        }
        // The same node for the same name, so that a transient object stays in one place.
        let chosen = hosts.sorted { $0.description < $1.description }[Int(Self.stableHash(name) % UInt64(hosts.count))]
        return ObjectBinding(object: name, host: chosen.host, port: chosen.port, epoch: 0)
    }

    private static func lookup(_ registry: any Registry, _ name: String) async throws -> [EndpointEntry] {
        do {
            return try await registry.lookup(name)
        } catch let error as ErrorMessage where error.code == .notFound {
            return []
        }
    }

    private static func stableHash(_ text: String) -> UInt64 {
        text.utf8.reduce(14_695_981_039_346_656_037) { ($0 ^ UInt64($1)) &* 1_099_511_628_211 }
    }

    private func forget(_ name: String, node: String) {
        self.state.withLockedValue { state in
            if state.bindings[name]?.node == node { state.bindings[name] = nil }
        }
    }

    /// The one connection to a node, shared by every call to it.
    func connection(_ host: String, _ port: Int) async throws -> WireClient {
        let key = "\(host):\(port)"
        let task: Task<WireClient, any Error> = self.state.withLockedValue { state in
            if let existing = state.connections[key] { return existing }
            let task = Task {
                try await WireClient.connect(
                    host: host,
                    port: port,
                    maxPayloadLength: ObjectLimits.maxPayloadLength,
                    eventLoop: self.eventLoop,
                    logger: self.logger
                )
            }
            state.connections[key] = task
            return task
        }
        do {
            let connection = try await task.value
            if connection.isActive { return connection }
            self.state.withLockedValue { state in
                if state.connections[key] == task { state.connections[key] = nil }
            }
            return try await self.connection(host, port)
        } catch {
            self.state.withLockedValue { state in
                if state.connections[key] == task { state.connections[key] = nil }
            }
            throw error
        }
    }
}

/// Why a call gave up.
public enum ObjectCallError: Error, Hashable, Sendable, CustomStringConvertible {
    case deadlineExceeded(object: String, method: String, deadline: Duration, lastError: String?)
    /// The node died after the call was sent: it may or may not have run, and the method is not
    /// idempotent, so it was not repeated elsewhere.
    case outcomeUnknown(object: String, method: String, reason: String)
    case noNode(object: String, reason: String)
    /// Some replicas of a group failed, so their answers could not be compared.
    case replicasFailed(object: String, method: String, failures: [String: String])
    /// The replicas of a group answered differently.
    case divergence(object: String, method: String, answers: [String: String])

    public var description: String {
        switch self {
        case .deadlineExceeded(let object, let method, let deadline, let lastError):
            "\(object).\(method) did not complete within its deadline of \(deadline)"
                + (lastError.map { "; last error: \($0)" } ?? "")
        case .outcomeUnknown(let object, let method, let reason):
            "\(object).\(method) was sent but its node failed before answering (\(reason)); it is not idempotent, so it was not repeated elsewhere, and it may or may not have run"
        case .noNode(let object, let reason):
            "cannot reach '\(object)': \(reason)"
        case .replicasFailed(let object, let method, let failures):
            "replicas of '\(object)' failed \(method): "
                + failures.sorted { $0.key < $1.key }.map { "\($0.key): \($0.value)" }.joined(separator: "; ")
        case .divergence(let object, let method, let answers):
            "the replicas of '\(object)' answered \(method) differently: "
                + answers.sorted { $0.key < $1.key }.map { "\($0.key) → \($0.value)" }.joined(separator: "; ")
        }
    }
}

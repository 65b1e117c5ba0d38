import FerryWire
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import ServiceLifecycle

/// The endpoint daemon: one well-known port where services register `name → endpoints` under a
/// lease and clients look names up or watch them (the seed's "daemon" that keeps track of the
/// end points of co-located servers, as DCE's does).
///
/// Speaks FerryWire: register, renew, deregister, lookup, list, watch. Watchers are pushed every
/// change of the name they watch; nobody polls.
public final class EndpointDaemon: Service, Sendable {
    /// The well-known port: 7411 (unassigned by IANA).
    public static let defaultPort = 7411
    /// The daemon a client talks to when not told another: this host's, on the well-known port.
    public static let defaultAddress = ServiceEndpoint(host: "127.0.0.1", port: defaultPort)
    /// How often leases that ran out are swept away (and their watchers told).
    public static let sweepInterval = TimeAmount.milliseconds(50)

    private let channel: any Channel
    private let directory: EndpointDirectory
    private let sweeper: RepeatedTask
    private let logger: Logger

    /// The bound address.
    public var host: String { self.channel.localAddress?.ipAddress ?? "?" }
    public var port: Int { self.channel.localAddress?.port ?? 0 }

    private init(channel: any Channel, directory: EndpointDirectory, sweeper: RepeatedTask, logger: Logger) {
        self.channel = channel
        self.directory = directory
        self.sweeper = sweeper
        self.logger = logger
    }

    /// Binds the daemon's port and starts serving.
    public static func bind(
        host: String = "127.0.0.1",
        port: Int = EndpointDaemon.defaultPort,
        logger: Logger = Logger(label: "ferry.endpointd")
    ) async throws -> EndpointDaemon {
        let directory = EndpointDirectory(logger: logger)
        let channel: any Channel
        do {
            channel = try await bindFerryWireServer(
                host: host,
                port: port,
                maxPayloadLength: EndpointLimits.maxPayloadLength,
                // One loop: a lookup is mostly one request on a new connection, and the hop from
                // the accepting loop to another cost more than the answer (a connection's p50
                // 257 -> 210 us, 3.5 -> 1.9 context switches; 16 clients on kept connections
                // 24.0k -> 24.5k and 25.3k lookups/s in `Benchmarks/endpoints.sh`).
                group: MultiThreadedEventLoopGroup.singleton.next(),
                logger: logger
            ) { _ in EndpointHandler(directory: directory, logger: logger) }
        } catch {
            throw EndpointDaemonError.cannotBind(host: host, port: port, reason: "\(error)")
        }
        let sweeper = channel.eventLoop.scheduleRepeatedTask(
            initialDelay: Self.sweepInterval,
            delay: Self.sweepInterval
        ) { _ in
            directory.sweep()
        }
        return EndpointDaemon(channel: channel, directory: directory, sweeper: sweeper, logger: logger)
    }

    /// Serves until graceful shutdown, then closes.
    public func run() async throws {
        try await gracefulShutdown()
        await self.close()
    }

    /// Stops listening and drops every connection; the table is soft state and goes with it.
    public func close() async {
        self.sweeper.cancel()
        try? await self.channel.close()
        self.directory.closeAll()
    }
}

/// Why a daemon could not start.
public enum EndpointDaemonError: Error, CustomStringConvertible {
    case cannotBind(host: String, port: Int, reason: String)

    public var description: String {
        switch self {
        case .cannotBind(let host, let port, let reason):
            "cannot listen on \(host):\(port): \(reason); is another endpoint daemon running there? pass --port 0 to pick a free port"
        }
    }
}

/// The table and its watchers, shared by every connection.
final class EndpointDirectory: Sendable {
    private struct Watcher {
        let channel: any Channel
        let requestID: UInt64
    }

    private struct State {
        var table = EndpointTable()
        var watchers: [String: [ObjectIdentifier: [Watcher]]] = [:]
        var connections: [ObjectIdentifier: any Channel] = [:]
    }

    private let state = NIOLockedValueBox(State())
    private let logger: Logger

    init(logger: Logger) {
        self.logger = logger
    }

    private static var now: UInt64 { NIODeadline.now().uptimeNanoseconds }

    func opened(_ channel: any Channel) {
        self.state.withLockedValue { $0.connections[ObjectIdentifier(channel)] = channel }
    }

    func closed(_ channel: any Channel) {
        let id = ObjectIdentifier(channel)
        self.state.withLockedValue { state in
            state.connections[id] = nil
            for name in state.watchers.keys {
                state.watchers[name]?[id] = nil
                if state.watchers[name]?.isEmpty == true { state.watchers[name] = nil }
            }
        }
    }

    func closeAll() {
        let connections = self.state.withLockedValue { $0.connections.values }
        for channel in connections { channel.close(promise: nil) }
    }

    /// Answers one request; throws an ``ErrorMessage`` for the peer.
    func answer(_ frame: Frame, from channel: any Channel) throws -> (any WireMessage)? {
        let now = Self.now
        switch frame.header.kind {
        case .endpointRegister:
            let request = try frame.decode(as: RegisterRequest.self)
            let lease = try self.change(request.name) { try $0.register(request, now: now) }
            self.logger.log(
                level: Self.logLevel(exclusive: request.metadata[EndpointTable.exclusiveKey] == "true"),
                "registered \(request.name) → \(request.endpoints.map(\.description).joined(separator: ",")) (lease \(lease.leaseID), ttl \(lease.ttlMilliseconds) ms)"
            )
            return lease
        case .endpointRenew:
            let request = try frame.decode(as: RenewRequest.self)
            return try self.state.withLockedValue {
                try $0.table.renew(name: request.name, leaseID: request.leaseID, now: now)
            }
        case .endpointDeregister:
            let request = try frame.decode(as: DeregisterRequest.self)
            let (lease, exclusive) = try self.change(request.name) { table in
                let exclusive = table.isExclusive(name: request.name, leaseID: request.leaseID)
                return (try table.deregister(name: request.name, leaseID: request.leaseID), exclusive)
            }
            self.logger.log(
                level: Self.logLevel(exclusive: exclusive),
                "deregistered \(request.name) (lease \(request.leaseID))"
            )
            return lease
        case .endpointLookup:
            let request = try frame.decode(as: LookupRequest.self)
            try EndpointTable.validateName(request.name)
            let answer = self.state.withLockedValue {
                EndpointEntries(revision: $0.table.revision, entries: $0.table.entries(named: request.name, now: now))
            }
            guard !answer.entries.isEmpty else {
                throw ErrorMessage(code: .notFound, message: "no service is registered as '\(request.name)'")
            }
            return answer
        case .endpointList:
            let request = try frame.decode(as: ListRequest.self)
            return self.state.withLockedValue {
                EndpointEntries(
                    revision: $0.table.revision,
                    entries: $0.table.entries(prefix: request.prefix, now: now)
                )
            }
        case .endpointWatch:
            let request = try frame.decode(as: WatchRequest.self)
            try EndpointTable.validateName(request.name)
            self.watch(request.name, channel: channel, requestID: frame.header.requestID, now: now)
            return nil
        case .ping:
            channel.writeAndFlush(
                Frame(kind: .pong, flags: .response, requestID: frame.header.requestID, payload: frame.payload),
                promise: nil
            )
            return nil
        default:
            throw ErrorMessage(
                code: .unknownKind,
                message:
                    "the endpoint daemon does not handle \(frame.header.kind) messages; it takes register, renew, deregister, lookup, list, watch and ping"
            )
        }
    }

    /// Drops leases that ran out and tells their watchers.
    func sweep() {
        let now = Self.now
        self.state.withLockedValue { state in
            let changed = state.table.expire(now: now)
            for name in changed {
                self.logger.info(
                    "lease on \(name) ran out; entries left: \(state.table.entries(named: name, now: now).count)"
                )
                Self.notify(name, state: state, now: now)
            }
        }
    }

    /// Applies a change to `name` and pushes the new entries to its watchers, under one lock so
    /// that every watcher sees changes in revision order.
    /// Exclusive claims come and go with every object activation: not news at info level.
    private static func logLevel(exclusive: Bool) -> Logger.Level { exclusive ? .debug : .info }

    private func change<Result>(_ name: String, _ body: (inout EndpointTable) throws -> Result) throws -> Result {
        let now = Self.now
        return try self.state.withLockedValue { state in
            let result = try body(&state.table)
            Self.notify(name, state: state, now: now)
            return result
        }
    }

    private func watch(_ name: String, channel: any Channel, requestID: UInt64, now: UInt64) {
        self.state.withLockedValue { state in
            let watcher = Watcher(channel: channel, requestID: requestID)
            state.watchers[name, default: [:]][ObjectIdentifier(channel), default: []].append(watcher)
            let entries = EndpointEntries(
                revision: state.table.revision,
                entries: state.table.entries(named: name, now: now)
            )
            Self.push(entries, to: watcher)
        }
    }

    private static func notify(_ name: String, state: State, now: UInt64) {
        guard let watchers = state.watchers[name] else { return }
        let entries = EndpointEntries(
            revision: state.table.revision,
            entries: state.table.entries(named: name, now: now)
        )
        for watcher in watchers.values.joined() { Self.push(entries, to: watcher) }
    }

    /// Queues the write on the channel's loop even from the loop itself, so writes leave in the
    /// order they were made under the lock, and no channel callback runs while the lock is held.
    private static func push(_ entries: EndpointEntries, to watcher: Watcher) {
        let frame = Frame(entries, flags: [.response, .more], requestID: watcher.requestID)
        let channel = watcher.channel
        channel.eventLoop.execute { channel.writeAndFlush(frame, promise: nil) }
    }
}

/// One connection to the daemon.
final class EndpointHandler: ChannelInboundHandler, Sendable {
    typealias InboundIn = Frame
    typealias OutboundOut = Frame

    private let directory: EndpointDirectory
    private let logger: Logger

    init(directory: EndpointDirectory, logger: Logger) {
        self.directory = directory
        self.logger = logger
    }

    func channelActive(context: ChannelHandlerContext) {
        self.directory.opened(context.channel)
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        self.directory.closed(context.channel)
        context.fireChannelInactive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = Self.unwrapInboundIn(data)
        let requestID = frame.header.requestID
        let answer: Frame
        do {
            guard let message = try self.directory.answer(frame, from: context.channel) else { return }
            answer = Frame(message, flags: .response, requestID: requestID)
        } catch {
            self.logger.debug(
                "refused \(frame.header.kind) from \(context.remoteAddress.map { "\($0)" } ?? "?"): \(error)"
            )
            answer = Frame(answering: error, requestID: requestID)
        }
        context.writeAndFlush(Self.wrapOutboundOut(answer), promise: nil)
    }
}

import FerryEndpoints
import FerryMigration
import FerryWire
import Foundation
import Logging
import NIOCore
import ServiceLifecycle

/// One node as a process of its own (`ferry node`): it hosts processes on its guest scheduler,
/// takes requests on its FerryWire port, takes moving processes on its migration port, and is
/// registered at the endpoint daemon as `node:NAME` with its load (run queue, processes,
/// memory) and where it takes processes.
public final class NodeServer: Service, Sendable {
    public struct Configuration: Sendable {
        public var name: String
        public var host: String
        public var port: Int
        /// Where the node and its processes are named: an endpoint daemon, or etcd.
        public var registry: RegistryAddress
        public var dataDirectory: String?
        public var trust: CodeStore.Trust
        public var threads: Int
        /// On SIGTERM, move every running process to this node before stopping.
        public var evacuateTo: String?
        public var localValues: [String: String]
        /// The lease of the node's registration and of its processes' claims.
        public var ttl: Duration
        /// The cgroup quota its guests' threads run under (`ferry node --cpus`), and the CPUs the
        /// node publishes as its budget.
        public var cpuQuota: CPUQuota?
        /// Which load-driven moves the node starts.
        public var balance: Balancer.Mode
        /// Where the node serves its control API and dashboard, published in its registration.
        public var http: ServiceEndpoint?

        public init(
            name: String,
            host: String = "127.0.0.1",
            port: Int = 0,
            registry: RegistryAddress,
            dataDirectory: String? = nil,
            trust: CodeStore.Trust = CodeStore.Trust(),
            threads: Int = 2,
            evacuateTo: String? = nil,
            localValues: [String: String] = [:],
            ttl: Duration = .seconds(10),
            cpuQuota: CPUQuota? = nil,
            balance: Balancer.Mode = .off,
            http: ServiceEndpoint? = nil
        ) {
            self.http = http
            self.cpuQuota = cpuQuota
            self.balance = balance
            self.name = name
            self.host = host
            self.port = port
            self.registry = registry
            self.dataDirectory = dataDirectory
            self.trust = trust
            self.threads = threads
            self.evacuateTo = evacuateTo
            self.localValues = localValues
            self.ttl = ttl
        }
    }

    public let configuration: Configuration
    public let host: ProcessHost
    public let endpoint: ServiceEndpoint
    public let migration: MigrationListener
    public let balancer: Balancer
    private let channel: any Channel
    private let logger: Logger

    private init(
        configuration: Configuration,
        host: ProcessHost,
        endpoint: ServiceEndpoint,
        migration: MigrationListener,
        balancer: Balancer,
        channel: any Channel,
        logger: Logger
    ) {
        self.balancer = balancer
        self.configuration = configuration
        self.host = host
        self.endpoint = endpoint
        self.migration = migration
        self.channel = channel
        self.logger = logger
    }

    /// Binds the node's ports and claims its name at the endpoint daemon.
    ///
    /// - Throws: when a port cannot be bound, the daemon cannot be reached, or another node
    ///   already has the name.
    public static func start(_ configuration: Configuration, logger: Logger) async throws -> NodeServer {
        let box = HostBox()
        let channel = try await bindFerryWireServer(
            host: configuration.host,
            port: configuration.port,
            maxPayloadLength: NodeLimits.maxPayloadLength,
            logger: logger
        ) { _ in NodeHandler(box: box, logger: logger) }
        let endpoint = ServiceEndpoint(host: configuration.host, port: channel.localAddress?.port ?? configuration.port)
        let host = try ProcessHost(
            configuration: ProcessHost.Configuration(
                node: configuration.name,
                endpoint: endpoint,
                registry: configuration.registry,
                dataDirectory: configuration.dataDirectory,
                trust: configuration.trust,
                threads: configuration.threads,
                claimTTL: configuration.ttl,
                localValues: configuration.localValues,
                cpuBudget: configuration.cpuQuota?.cpus,
                onGuestThreadStart: { [quota = configuration.cpuQuota, logger] in
                    do {
                        try quota?.confineCallingThread()
                    } catch {
                        logger.warning("a guest thread runs outside the node's CPU quota: \(error)")
                    }
                }
            ),
            logger: logger
        )
        let balancer = Balancer(host: host, mode: configuration.balance, logger: logger)
        box.set(host, balancer)
        let migration = try MigrationListener(ServiceEndpoint(host: configuration.host, port: 0), host: host)
        let server = NodeServer(
            configuration: configuration,
            host: host,
            endpoint: endpoint,
            migration: migration,
            balancer: balancer,
            channel: channel,
            logger: logger
        )
        do {
            try await server.register()
            host.recover()
        } catch {
            migration.close()
            try? await channel.close()
            await host.close()
            throw error
        }
        return server
    }

    public func run() async throws {
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await self.host.run() }
            group.addTask { await self.keepRegistered() }
            group.addTask { await self.balancer.run() }
            try? await gracefulShutdown()
            await self.stop()
            group.cancelAll()
        }
        await self.host.close()
    }

    /// Evacuates when asked to, then stops taking requests and processes.
    private func stop() async {
        if let target = self.configuration.evacuateTo {
            for process in self.host.list() where process.state == "running" || process.state == "waiting" {
                do {
                    // A container's execution state cannot move here (no CRIU): it moves weakly.
                    let mode: MoveMode = process.digest == "container" ? .weak : .strong
                    let report = try await self.host.migrate(process.name, to: target, mode: mode)
                    self.logger.info("moved '\(process.name)' to \(target) before stopping (\(report.bytesSent) bytes)")
                } catch {
                    self.logger.error("cannot move '\(process.name)' to \(target) before stopping: \(error)")
                }
            }
        }
        self.migration.close()
        try? await self.channel.close()
        await self.host.claims.release("node:\(self.configuration.name)")
    }

    // MARK: Registration

    private var registrationName: String { "node:\(self.configuration.name)" }

    private func metadata() -> [String: String] {
        var metadata = self.host.load().metadata
        metadata["migration"] = "\(self.migration.endpoint)"
        if let http = self.configuration.http { metadata["http"] = "\(http)" }
        return metadata
    }

    /// Claims `node:NAME`. A registration left by this node's previous run (killed: its port
    /// refuses connections) is taken over; a live node of the same name is not.
    private func register() async throws {
        do {
            try await self.host.claims.claim(self.registrationName, metadata: self.metadata())
        } catch let error as ErrorMessage where error.code == .held {
            if let holder = try await self.host.claims.holder(of: self.registrationName),
                let endpoint = holder.endpoints.first, await Self.isGone(endpoint)
            {
                try await self.host.claims.claim(
                    self.registrationName,
                    metadata: self.metadata(),
                    takeover: holder.leaseID
                )
                self.logger.info(
                    "took over the registration of '\(self.configuration.name)' from its earlier run at \(endpoint)"
                )
                return
            }
            throw ErrorMessage(
                code: .held,
                message:
                    "another node is registered as '\(self.configuration.name)': \(error.message); pick another --name"
            )
        }
    }

    /// Whether nothing listens at `endpoint` any more.
    private static func isGone(_ endpoint: ServiceEndpoint) async -> Bool {
        do {
            await (try NodeClient.connect(to: endpoint, timeout: .seconds(2))).close()
            return false
        } catch let error as NodeClient.Unreachable {
            return error.refused
        } catch {
            return false
        }
    }

    /// Publishes the node's load every second, and at once (within a quarter of a second) when
    /// its run queue or its processes change, so that a receiver-initiated balancer elsewhere
    /// sees new work without waiting out the second; the claim's renewals keep the registration
    /// alive in between, and a lost one is registered anew.
    private func keepRegistered() async {
        var last = self.metadata()
        var publishedAt = ContinuousClock.now
        while !Task.isCancelled {
            try? await Task.sleep(for: .milliseconds(250))
            let now = self.metadata()
            let lost = self.host.claims.lease(of: self.registrationName) == nil
            let queueChanged = now["runq"] != last["runq"] || now["processes"] != last["processes"]
            let due = ContinuousClock.now - publishedAt >= .seconds(1) && now != last
            guard lost || queueChanged || due else { continue }
            do {
                try await self.host.claims.claim(self.registrationName, metadata: now)
                last = now
                publishedAt = .now
            } catch {
                self.logger.warning(
                    "cannot register node '\(self.configuration.name)' at \(self.configuration.registry): \(error)"
                )
            }
        }
    }
}

/// The host and its balancer, set once the port is bound (the handler is made before they exist).
final class HostBox: @unchecked Sendable {
    // Sendable: written once, before the first connection can send a request.
    private(set) var host: ProcessHost?
    private(set) var balancer: Balancer?

    func set(_ host: ProcessHost, _ balancer: Balancer) {
        self.host = host
        self.balancer = balancer
    }
}

/// One connection to a node: each request runs as a task and answers on the connection.
final class NodeHandler: ChannelInboundHandler, Sendable {
    typealias InboundIn = Frame
    typealias OutboundOut = Frame

    private let box: HostBox
    private let logger: Logger

    init(box: HostBox, logger: Logger) {
        self.box = box
        self.logger = logger
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = Self.unwrapInboundIn(data)
        let requestID = frame.header.requestID
        let channel = context.channel
        let send: @Sendable (NodeReply, Bool) -> Void = { reply, more in
            let frame = Frame(
                NodeReplyMessage(reply),
                flags: more ? [.response, .more] : .response,
                requestID: requestID
            )
            channel.eventLoop.execute { channel.writeAndFlush(frame, promise: nil) }
        }
        do {
            switch frame.header.kind {
            case .nodeRequest:
                let request = try frame.decode(as: NodeRequestMessage.self).request
                guard let host = self.box.host, let balancer = self.box.balancer else {
                    throw ErrorMessage(code: .unavailable, message: "the node is starting")
                }
                Task {
                    do {
                        try await NodeRequests.answer(request, host: host, balancer: balancer, send: send)
                    } catch {
                        channel.eventLoop.execute {
                            channel.writeAndFlush(
                                Frame(answering: NodeRequests.wireError(error), requestID: requestID),
                                promise: nil
                            )
                        }
                    }
                }
            case .ping:
                context.writeAndFlush(
                    Self.wrapOutboundOut(
                        Frame(kind: .pong, flags: .response, requestID: requestID, payload: frame.payload)
                    ),
                    promise: nil
                )
            default:
                throw ErrorMessage(
                    code: .unknownKind,
                    message: "a node does not handle \(frame.header.kind) messages; it takes node-request and ping"
                )
            }
        } catch {
            context.writeAndFlush(Self.wrapOutboundOut(Frame(answering: error, requestID: requestID)), promise: nil)
        }
    }
}

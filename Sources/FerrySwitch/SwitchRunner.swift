import FerryConfiguration
import FerryEndpoints
import Logging
import NIOConcurrencyHelpers
import ServiceLifecycle

/// A switch as `ferry switch` runs it: built from a ``SwitchConfiguration``, rebuilt when the
/// configuration changes, without dropping an established connection.
///
/// A reload (SIGHUP, or the endpoint daemon reporting that a discovered service's endpoints
/// changed) builds a new switch on the same listening socket and retires the old one: it stops
/// accepting, lets its connections finish, and ends. New connections meet the new switch.
public final class SwitchRunner: Service, Sendable {
    private struct State {
        var configuration: SwitchConfiguration
        var current: any SwitchService
        var retired: [any SwitchService] = []
        /// The endpoints each discovered service has now.
        var discovered: [String: [ServiceEndpoint]]
    }

    public let listener: SwitchListener
    /// SIGHUP, trapped from the start: one that came between telling the world the switch is up
    /// and ``run()`` would otherwise end the process.
    private let hangups: HangupReload?
    private let logger: Logger
    private let state: NIOLockedValueBox<State>

    /// Where the switch listens.
    public var address: ServiceEndpoint { self.listener.address }
    /// The running switch's balancer (a reload replaces it).
    public var balancer: Balancer { self.state.withLockedValue { $0.current.balancer } }
    public var configuration: SwitchConfiguration { self.state.withLockedValue { $0.configuration } }

    private init(
        listener: SwitchListener,
        hangups: HangupReload?,
        logger: Logger,
        state: State
    ) {
        self.listener = listener
        self.hangups = hangups
        self.logger = logger
        self.state = NIOLockedValueBox(state)
    }

    /// Binds the listening socket, looks up the services to discover, and starts the switch.
    /// With `configurationFile`, SIGHUP reloads it while ``run()`` runs.
    public static func start(
        _ configuration: SwitchConfiguration,
        configurationFile: String? = nil,
        logger: Logger
    ) async throws -> SwitchRunner {
        if let problem = configuration.problem() { throw SwitchError.system(problem) }
        let listener = try SwitchListener(configuration.listen)
        var discovered: [String: [ServiceEndpoint]] = [:]
        if !configuration.discover.isEmpty {
            do {
                let directory = try await configuration.endpoints.connect(logger: logger)
                defer { Task { await directory.close() } }
                for discovery in configuration.discover {
                    // A service not registered yet has no backends until it is.
                    let entries = try await directory.list(prefix: discovery.service).filter {
                        $0.name == discovery.service
                    }
                    discovered[discovery.service] = entries.flatMap(\.endpoints)
                }
            } catch {
                throw SwitchError.system(
                    "cannot reach \(configuration.endpoints) to discover backends (\(error)); is 'ferry up' or 'ferry endpointd' running?"
                )
            }
        }
        let first = try Self.make(configuration, discovered: discovered, listener: listener, logger: logger)
        var hangups: HangupReload?
        if let configurationFile { hangups = await HangupReload(path: configurationFile) }
        return SwitchRunner(
            listener: listener,
            hangups: hangups,
            logger: logger,
            state: State(configuration: configuration, current: first, discovered: discovered)
        )
    }

    /// Replaces the running switch with one built from `configuration`; the old one retires.
    /// - Throws: when the configuration cannot run; the running switch then stays.
    public func reload(_ configuration: SwitchConfiguration) throws {
        if let problem = configuration.problem() { throw SwitchError.system(problem) }
        try self.state.withLockedValue { state in
            guard configuration.listen == state.configuration.listen else {
                throw SwitchError.system(
                    "listen cannot change on a reload (\(state.configuration.listen) to \(configuration.listen)); restart the switch"
                )
            }
            let next = try Self.make(
                configuration,
                discovered: state.discovered,
                listener: self.listener,
                logger: self.logger
            )
            let old = state.current
            state.current = next
            state.configuration = configuration
            state.retired.append(old)
            old.retire()
            self.logger.info(
                "switch reloaded: \(configuration.mode.rawValue), backends \(next.balancer.backends.map(\.spec.description).joined(separator: ", ")); the previous one finishes its connections"
            )
        }
    }

    public func run() async throws {
        await withTaskGroup(of: Void.self) { group in
            if let hangups = self.hangups {
                group.addTask {
                    await hangups.run(logger: self.logger) { try self.reload(SwitchConfiguration.load(path: $0)) }
                }
            }
            for discovery in self.configuration.discover {
                group.addTask { await self.follow(discovery.service) }
            }
            try? await gracefulShutdown()
            group.cancelAll()
        }
        self.stop()
    }

    /// Stops the switch and any retired one still finishing.
    public func stop() {
        let switches = self.state.withLockedValue { state in
            defer { state.retired = [] }
            return [state.current] + state.retired
        }
        for running in switches { running.stop() }
    }

    /// Follows a discovered service at the endpoint daemon, reloading when its endpoints change;
    /// reconnects when the daemon goes away.
    private func follow(_ service: String) async {
        let endpoints = self.configuration.endpoints
        while !Task.isCancelled {
            do {
                let directory = try await endpoints.connect(logger: self.logger)
                for try await change in directory.watch(service) {
                    self.discovered(service, change.entries.flatMap(\.endpoints))
                }
                await directory.close()
            } catch {
                if Task.isCancelled { return }
                self.logger.warning("switch: lost \(endpoints) (\(error)); retrying in a second")
            }
            try? await Task.sleep(for: .seconds(1))
        }
    }

    private func discovered(_ service: String, _ endpoints: [ServiceEndpoint]) {
        let configuration: SwitchConfiguration? = self.state.withLockedValue { state in
            guard state.discovered[service] != endpoints else { return nil }
            state.discovered[service] = endpoints
            return state.configuration
        }
        guard let configuration else { return }
        self.logger.info("switch: \(service) is now at \(endpoints.map(\.description).joined(separator: ", "))")
        do {
            try self.reload(configuration)
        } catch {
            self.logger.error("switch: cannot follow \(service): \(error)")
        }
    }

    private static func make(
        _ configuration: SwitchConfiguration,
        discovered: [String: [ServiceEndpoint]],
        listener: SwitchListener,
        logger: Logger
    ) throws -> any SwitchService {
        let backends =
            configuration.backends
            + configuration.discover.flatMap { $0.backends(discovered[$0.service] ?? []) }
        switch configuration.mode {
        case .handoff:
            return try HandoffSwitch(
                listen: listener,
                backends: backends,
                policy: configuration.balance,
                healthCheck: configuration.healthCheck,
                healthCheckInterval: configuration.healthInterval,
                slowStart: configuration.slowStart,
                logger: logger
            )
        case .l7:
            return try HTTPSwitch(
                listen: listener,
                backends: backends,
                policy: configuration.balance,
                maxConnectionsPerBackend: configuration.maxConnections,
                healthCheck: configuration.healthCheck,
                healthCheckInterval: configuration.healthInterval,
                slowStart: configuration.slowStart,
                options: configuration.httpOptions,
                threads: configuration.threads,
                logger: logger
            )
        case .l4:
            return try TransportSwitch(
                listen: listener,
                backends: backends,
                policy: configuration.balance,
                maxConnectionsPerBackend: configuration.maxConnections,
                healthCheck: configuration.healthCheck,
                healthCheckInterval: configuration.healthInterval,
                slowStart: configuration.slowStart,
                threads: configuration.threads,
                logger: logger
            )
        }
    }
}

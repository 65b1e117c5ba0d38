import FerryEndpoints
import FerryGuest
import FerryWire
import Foundation
import Logging
import NIOConcurrencyHelpers

/// The processes of one node: it starts them on its guest scheduler, names each in the cluster
/// with an exclusive claim at the endpoint daemon (`process:NAME`, carrying the node and the
/// epoch), and moves them to and from other nodes so that each exists exactly once.
public final class ProcessHost: Sendable {
    public struct Configuration: Sendable {
        /// The node's name in the cluster (`node:NAME` at the daemon).
        public var node: String
        /// Where the node takes requests (FerryWire): the endpoint its claims register.
        public var endpoint: ServiceEndpoint
        /// Where names are claimed: an endpoint daemon, or etcd.
        public var registry: RegistryAddress
        /// Where the node keeps code, journals and processes' layers; nil: a temporary directory,
        /// and nothing survives a restart.
        public var dataDirectory: String?
        public var trust: CodeStore.Trust
        /// Kernel threads that run guests.
        public var threads: Int
        /// The lease each process claim is held under.
        public var claimTTL: Duration
        /// Node-local values to start with (`ferry.local_get`).
        public var localValues: [String: String]
        /// The CPUs the node may use (its `--cpus` quota); nil: its threads, at most the machine's.
        public var cpuBudget: Double?
        /// Called first on each thread that runs guests (to put it under the node's quota).
        public var onGuestThreadStart: @Sendable () -> Void

        public init(
            node: String,
            endpoint: ServiceEndpoint,
            registry: RegistryAddress,
            dataDirectory: String? = nil,
            trust: CodeStore.Trust = CodeStore.Trust(),
            threads: Int = 2,
            claimTTL: Duration = .seconds(10),
            localValues: [String: String] = [:],
            cpuBudget: Double? = nil,
            onGuestThreadStart: @escaping @Sendable () -> Void = {}
        ) {
            self.cpuBudget = cpuBudget
            self.onGuestThreadStart = onGuestThreadStart
            self.node = node
            self.endpoint = endpoint
            self.registry = registry
            self.dataDirectory = dataDirectory
            self.trust = trust
            self.threads = threads
            self.claimTTL = claimTTL
            self.localValues = localValues
        }
    }

    public let configuration: Configuration
    public let code: CodeStore
    let scheduler: GuestScheduler
    package let claims: ExclusiveClaims
    let local: NodeLocalSpace
    /// Native programs in containers, processes of the cluster beside the guests.
    public let containers: NodeContainers
    /// Data sets loaded into this node (`ferry data load`), read by its guests by type.
    public let dataSets: NodeDataSets
    /// The cluster's key-value service, for processes that use it (by identifier).
    let kv: ClusterKV
    let logger: Logger
    /// Where processes' logs and writable layers live.
    let workDirectory: String
    let processes = NIOLockedValueBox<[String: HostedProcess]>([:])
    /// Nil without a data directory: then a crash loses the node's processes.
    let journal: ProcessJournal?
    /// Read-only layers of processes that left, lent by id to the nodes they went to.
    let lentLayers = NIOLockedValueBox<[String: String]>([:])
    /// Set by ``MigrationListener`` once it listens: where other nodes send processes.
    let migrationEndpoint = NIOLockedValueBox<ServiceEndpoint?>(nil)
    private let cpuMeter = CPUMeter()

    public var node: String { self.configuration.node }

    public init(configuration: Configuration, logger: Logger) throws {
        self.configuration = configuration
        self.logger = logger
        let work: String
        if let data = configuration.dataDirectory {
            work = data
        } else {
            work = FileManager.default.temporaryDirectory.appendingPathComponent("ferry-node-\(UUID().uuidString)").path
        }
        try FileManager.default.createDirectory(atPath: work + "/processes", withIntermediateDirectories: true)
        self.workDirectory = work
        self.journal = ProcessJournal(dataDirectory: configuration.dataDirectory)
        self.code = try CodeStore(
            directory: configuration.dataDirectory.map { $0 + "/code" },
            trust: configuration.trust
        )
        self.local = try NodeLocalSpace(
            nodeName: configuration.node,
            path: configuration.dataDirectory.map { $0 + "/local.sqlite" },
            initial: configuration.localValues
        )
        self.dataSets = try NodeDataSets(directory: work + "/datasets")
        self.scheduler = GuestScheduler(
            kernelThreads: configuration.threads,
            onThreadStart: configuration.onGuestThreadStart
        )
        self.claims = ExclusiveClaims(
            registry: configuration.registry,
            holder: configuration.endpoint,
            ttl: configuration.claimTTL,
            logger: logger
        )
        self.kv = ClusterKV(claims: self.claims)
        self.containers = try NodeContainers(
            node: configuration.node,
            allowed: configuration.trust.allowContainers,
            claims: self.claims,
            directory: work + "/containers"
        )
        self.claims.onLost { [weak self] name, _ in self?.claimLost(name) }
    }

    /// Keeps the claims until cancelled.
    public func run() async {
        await self.claims.keepClaims()
    }

    /// Stops every process (they fail with the scheduler stopped) and closes the daemon connection.
    public func close() async {
        self.scheduler.shutdown()
        await self.containers.stopAll()
        await self.claims.close()
        self.local.close()
    }

    static func claimName(_ process: String) -> String { "process:\(process)" }

    // MARK: Spawning

    /// The node holds no module with this digest: send it with the request.
    public struct NeedCode: Error {
        public let digest: String
    }

    /// Starts a process.
    ///
    /// - Parameter code: the module's bytes, when the caller sends them; without them the node
    ///   takes the module from its code store, or throws ``NeedCode``.
    /// - Parameter movable: run the module's movable form (safe points at loops and calls, so
    ///   that the process can be held, checkpointed and moved anywhere); false runs it as compiled,
    ///   held and moved only at its host calls.
    /// - Throws: ``CodeRefusal`` for code the node does not trust, ``GuestError`` for a module
    ///   that is not valid or arguments that do not fit, ``ProcessError`` for a name in use.
    public func spawn(_ spec: ProcessSpec, code: [UInt8]?, movable: Bool = true) async throws -> ProcessSummary {
        try ProcessSpec.validate(name: spec.name)
        guard (spec.input?.count ?? 0) <= ProcessSpec.maxInputBytes else {
            throw ProcessError(
                "an input of \(spec.input?.count ?? 0) bytes is over the \(ProcessSpec.maxInputBytes) a process takes"
            )
        }
        guard let digest = ModuleDigest(hex: spec.digest) else {
            throw ProcessError("'\(spec.digest)' is not a module digest (64 hex digits)")
        }
        let original: GuestModule
        if let code {
            original = try self.code.admit(code, expected: digest)
        } else if let held = try self.code.module(digest) {
            original = held
        } else if let fetched = try await self.fetchCode(digest) {
            original = fetched
        } else {
            throw NeedCode(digest: spec.digest)
        }
        let module = movable ? self.runnable(original) : original
        let arguments =
            spec.export == nil
            ? [] : try GuestValues.parse(spec.arguments, as: try module.parameters(of: spec.entry), export: spec.entry)
        guard self.processes.withLockedValue({ $0[spec.name] == nil }) else {
            throw ProcessError("a process named '\(spec.name)' is already on node \(self.node)")
        }
        let lease: EndpointLease
        do {
            lease = try await self.claims.claim(Self.claimName(spec.name), metadata: self.claimMetadata(spec, epoch: 1))
        } catch let error as ErrorMessage where error.code == .held {
            throw ProcessError("the name '\(spec.name)' is taken in this cluster: \(error.message)")
        }
        do {
            let process = try self.makeProcess(spec, module: module, epoch: 1, moves: 0, cpuBefore: .zero)
            try self.journal?.write(
                ProcessJournal.Entry(
                    spec: spec,
                    epoch: 1,
                    lease: lease.leaseID,
                    moves: 0,
                    cpuMilliseconds: 0,
                    captured: false,
                    goResult: -1,
                    restarts: false,
                    logBase: 0
                )
            )
            let task = self.scheduler.spawn(
                module,
                export: spec.entry,
                arguments: arguments,
                limits: spec.limits,
                environment: self.environment(for: process),
                resultBytes: spec.resultBytes ?? 0,
                start: false,
                onHold: self.holdHandler(spec.name)
            )
            // Known before it runs: a guest that calls ferry.go at once is found by its hold handler.
            self.track(process, task: task)
            self.scheduler.start(task)
            self.logger.info("started process '\(spec.name)' (\(digest.short), \(spec.entry))")
            return process.summary(node: self.node)
        } catch {
            await self.claims.release(Self.claimName(spec.name))
            throw error
        }
    }

    /// What the scheduler runs for `module`: its movable form, or the module as it is when it
    /// cannot be made movable (it then runs, and can still move at the calls it makes).
    func runnable(_ module: GuestModule) -> GuestModule {
        do {
            return try module.movable()
        } catch {
            self.logger.warning("\(error)")
            return module
        }
    }

    func claimMetadata(_ spec: ProcessSpec, epoch: UInt64) -> [String: String] {
        ["node": self.node, "epoch": String(epoch), "digest": spec.digest]
    }

    /// A process record with its log and directories, not yet running.
    func makeProcess(
        _ spec: ProcessSpec,
        module: GuestModule,
        epoch: UInt64,
        moves: Int,
        cpuBefore: Duration,
        log: (base: Int, bytes: [UInt8]) = (0, []),
        state: HostedProcess.State = .running,
        recovering: Bool = false,
        services: ProcessServices? = nil,
        cameFrom: String? = nil
    ) throws -> HostedProcess {
        let directory = "\(self.workDirectory)/processes/\(spec.name)"
        if !recovering { try? FileManager.default.removeItem(atPath: directory) }
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        return HostedProcess(
            spec: spec,
            module: module,
            log: try ProcessLog(path: directory + "/output.log", base: log.base, initial: log.bytes, keep: recovering),
            directories: try ProcessDirectories.views(spec, in: directory).map { view in
                var view = view
                view.firstUse = self.firstUse(of: view)
                return view
            },
            directory: directory,
            services: services ?? ProcessServices(local: self.local, kv: self.kv, data: self.dataSets),
            epoch: epoch,
            moves: moves,
            cpuBefore: cpuBefore,
            state: state,
            cameFrom: cameFrom
        )
    }

    func environment(for process: HostedProcess) -> GuestEnvironment {
        let log = process.log
        return GuestEnvironment(
            arguments: process.spec.export == nil ? process.spec.arguments : [],
            standardInput: -1,
            standardOutput: log.fd,
            standardError: log.fd,
            directories: process.directories,
            log: { line in log.line(line) },
            node: process.services,
            input: process.spec.input.map { [UInt8]($0) } ?? []
        )
    }

    /// Records the process and follows its task to the end.
    func track(_ process: HostedProcess, task: GuestTask) {
        process.attach(task)
        self.processes.withLockedValue { $0[process.name] = process }
        Task {
            let outcome: ProcessOutcome
            do {
                let values = try await task.value()
                outcome = ProcessOutcome(
                    values: values.map(GuestValues.describe),
                    resultHex: task.resultMemory.map(GuestValues.hex)
                )
            } catch let moved as ProcessMoved {
                process.movedAway(to: moved.node)
                return
            } catch let exit as GuestExit {
                outcome = ProcessOutcome(exitCode: exit.code)
            } catch {
                outcome = ProcessOutcome(failure: "\(error)")
            }
            guard process.task === task else { return }
            process.ended(outcome)
            self.journal?.remove(process.name)
            self.logger.info("process '\(process.name)' ended: \(outcome.failure ?? "ok")")
        }
    }

    // MARK: Asking about processes

    func process(_ name: String) throws -> HostedProcess {
        guard let process = self.processes.withLockedValue({ $0[name] }) else {
            throw ProcessError.unknown(name, node: self.node)
        }
        return process
    }

    /// Every process this node has, running or ended.
    public func list() -> [ProcessSummary] {
        (self.processes.withLockedValue { Array($0.values) }
            .filter { if case .movedAway = $0.state { return false } else { return true } }
            .map { $0.summary(node: self.node) }
            + self.containers.list()).sorted { $0.name < $1.name }
    }

    /// Waits for a process to end here, or to leave.
    public func wait(_ name: String) async throws -> NodeReply {
        if self.containers.holds(name) { return try await self.containers.wait(name) }
        return switch await try self.process(name).wait() {
        case .finished(let outcome): .finished(outcome)
        case .moved(let node): .moved(to: node)
        }
    }

    /// How long a call waits for the process's answer.
    static let callTimeout: Duration = .seconds(30)

    /// Client–server: posts `message` to the process and answers the next message it sends, or
    /// where it went when it left before the call went in (the caller sends it there). A call
    /// that went in and was still waiting when the process moved is answered all the same: its
    /// answer is kept where the process went, and fetched from there.
    public func call(_ name: String, message: [UInt8]) async throws -> NodeReply {
        guard message.count <= GuestMailbox.maxMessageBytes else {
            throw ProcessError(
                "a message of \(message.count) bytes is over the \(GuestMailbox.maxMessageBytes) a process takes"
            )
        }
        let deadline = ContinuousClock.now + Self.callTimeout
        let process = try self.process(name)
        guard await process.calls.enter() else {
            if case .movedAway(let node) = process.state { return .moved(to: node) }
            throw ProcessError("'\(name)' \(process.state.name) before it could take the call")
        }
        defer { process.calls.leave() }
        guard let mailbox = process.task?.environment.mailbox else {
            throw ProcessError("'\(name)' \(process.state.name) before it could take the call")
        }
        mailbox.post(message)
        switch await mailbox.nextSent(timeout: Self.callTimeout) {
        case .message(let answer):
            return .answer(Data(answer))
        case .departed(let ticket?):
            guard case .movedAway(let node) = process.state else { break }
            return try await self.fetchKeptAnswer(name, ticket: ticket, from: node, until: deadline)
        case .departed(nil):
            guard case .movedAway(let node) = process.state else { break }
            throw ProcessError(
                "'\(name)' moved to \(node) by a weak move while the call waited: the call went in here, and the program started again there without it"
            )
        case .timedOut, .notOwed:
            break
        }
        throw ProcessError("'\(name)' did not answer within \(Self.callTimeout)")
    }

    /// A call that waited here when its process moved: fetches its answer from the node the
    /// process went to, following it on if it moved again before answering.
    private func fetchKeptAnswer(
        _ name: String,
        ticket: UInt64,
        from node: String,
        until deadline: ContinuousClock.Instant
    ) async throws -> NodeReply {
        var node = node
        for _ in 0..<16 {  // hops, should it keep moving before it answers
            guard let endpoint = try await self.claims.holder(of: "node:\(node)")?.endpoints.first else {
                throw ProcessError(
                    "'\(name)' moved to \(node) while the call waited, and no node of that name is registered to ask for its answer"
                )
            }
            let client = try await NodeClient.connect(to: endpoint)
            defer { Task { await client.close() } }
            let left = deadline - .now
            guard left > .zero else { break }
            switch try await client.request(.keptAnswer(name, ticket: ticket), timeout: left + .seconds(1)) {
            case .answer(let answer): return .answer(answer)
            case .moved(let next): node = next
            default: throw ProcessError("node \(node) gave no answer for '\(name)''s call that waited while it moved")
            }
        }
        throw Self.unansweredAcrossAMove(name)
    }

    private static func unansweredAcrossAMove(_ name: String) -> ProcessError {
        ProcessError("'\(name)' did not answer within \(Self.callTimeout) (it moved while the call waited)")
    }

    /// Answers ``NodeRequest/keptAnswer(_:ticket:)``: the answer this node keeps for a call that
    /// waited at another node, once the process sends it.
    public func keptAnswer(_ name: String, ticket: UInt64) async throws -> NodeReply {
        let process = try self.process(name)
        if case .movedAway(let node) = process.state { return .moved(to: node) }
        guard let mailbox = process.task?.environment.mailbox else {
            throw ProcessError("'\(name)' \(process.state.name) before it answered the call that waited while it moved")
        }
        switch await mailbox.keptAnswer(ticket, timeout: Self.callTimeout) {
        case .message(let answer):
            return .answer(Data(answer))
        case .departed:
            if case .movedAway(let node) = process.state { return .moved(to: node) }
        case .timedOut:
            throw Self.unansweredAcrossAMove(name)
        case .notOwed:
            break
        }
        throw ProcessError("'\(name)' holds no answer for that call: it was taken, given up, or never owed here")
    }

    /// Whether the process runs here (or is arriving and committing).
    public func holds(_ name: String) -> Bool {
        guard let process = self.processes.withLockedValue({ $0[name] }) else { return false }
        switch process.state {
        case .running, .moving: return true
        case .ended, .movedAway: return false
        }
    }

    /// Output of a process from `offset`.
    public func output(_ name: String, from offset: Int) throws -> NodeReply {
        if self.containers.holds(name) { return try self.containers.output(name, from: offset) }
        let process = try self.process(name)
        let (bytes, next) = process.log.read(from: offset)
        let ended: Bool
        switch process.state {
        case .running, .moving: ended = false
        case .ended: ended = next >= process.log.end
        case .movedAway(let node):
            return bytes.isEmpty ? .moved(to: node) : .output(Data(bytes), next: next, ended: false)
        }
        return .output(Data(bytes), next: next, ended: ended)
    }

    /// Stops a running process (it fails with "killed"), or forgets an ended one and gives its
    /// name up.
    public func kill(_ name: String) async throws {
        if self.containers.holds(name) { return try await self.containers.kill(name) }
        let process = try self.process(name)
        switch process.state {
        case .running:
            guard let task = process.task, process.beginMove() else { break }
            if await process.hold(timeout: .seconds(10), request: { self.scheduler.requestCapture(task) }) != nil {
                self.scheduler.release(task, with: .failure(ProcessError("killed")))
                self.journal?.remove(name)
                // Answer once it is listed as failed, so that a kill right after finds it ended.
                _ = await process.wait()
            } else {
                process.moveAborted()
                throw ProcessError(
                    "'\(name)' did not stop within 10 seconds: its module cannot be interrupted between host calls (\(task.interrupt.refusal ?? "it is not movable"))"
                )
            }
        case .moving:
            throw ProcessError("'\(name)' is moving; kill it where it arrives")
        case .ended, .movedAway:
            self.processes.withLockedValue { _ = $0.removeValue(forKey: name) }
            self.journal?.remove(name)
            await self.claims.release(Self.claimName(name))
        }
    }

    /// The node's load, for its registration and its balancer.
    public func load() -> NodeLoad {
        let all = self.processes.withLockedValue { Array($0.values) }
        let running = all.filter { $0.state == .running }
        let budget =
            self.configuration.cpuBudget
            ?? Double(min(self.configuration.threads, ProcessInfo.processInfo.activeProcessorCount))
        return NodeLoad(
            node: self.node,
            runQueue: running.filter { $0.task?.isParked != true }.count,
            processes: running.count,
            memoryBytes: running.reduce(0) { $0 + ($1.task?.memoryBytes ?? 0) },
            cpuBudget: budget,
            cpuUse: self.cpuMeter.cpus() / budget,
            threads: self.configuration.threads
        )
    }

    /// The processes the balancer may move, with what it weighs.
    func balanceCandidates() -> [BalancePolicy.Candidate] {
        let now = ContinuousClock.now
        return self.processes.withLockedValue { Array($0.values) }
            .filter { $0.state == .running && !$0.fetchingPages }
            .map { process in
                BalancePolicy.Candidate(
                    name: process.name,
                    memoryBytes: process.task?.memoryBytes ?? 0,
                    cpuSeconds: process.cpuTime / .seconds(1),
                    runnable: process.task?.isParked != true,
                    pinned: process.spec.isPinned,
                    resident: now - process.arrivedAt,
                    cameFrom: process.cameFrom
                )
            }
    }

    /// A claim ran out or another node took it: a process here that is not moving must stop.
    private func claimLost(_ claim: String) {
        let name = String(claim.dropFirst("process:".count))
        if self.containers.holds(name) {
            self.containers.claimLost(name)
            return
        }
        guard let process = self.processes.withLockedValue({ $0[name] }), process.state == .running,
            let task = process.task
        else { return }
        self.logger.error("process '\(name)' lost its claim; stopping it here so that it never runs twice")
        Task {
            guard process.beginMove() else { return }
            if await process.hold(timeout: .seconds(10), request: { self.scheduler.requestCapture(task) }) != nil {
                self.scheduler.release(task, with: .failure(ProcessError("lost its claim in the cluster")))
            }
        }
    }
}

/// Ends a task whose process went to another node.
struct ProcessMoved: Error {
    let node: String
}

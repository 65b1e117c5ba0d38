import FerryEndpoints
import FerryGuest
import FerryMigration
import FerryWire
import Foundation

/// What a node does with each ``NodeRequest``: answers through `send`, whose flag says more
/// answers follow.
enum NodeRequests {
    static func answer(
        _ request: NodeRequest,
        host: ProcessHost,
        balancer: Balancer,
        send: @escaping @Sendable (NodeReply, Bool) -> Void
    ) async throws {
        switch request {
        case .spawn(let spec, let code):
            do {
                send(.spawned(try await host.spawn(spec, code: code.map { [UInt8]($0) })), false)
            } catch let need as ProcessHost.NeedCode {
                send(.needCode(need.digest), false)
            }
        case .spawnContainer(let request):
            send(.spawned(try await host.containers.spawn(request)), false)
        case .adoptContainer(let request, let upper, let lease):
            send(.spawned(try await host.containers.adopt(request, upper: [UInt8](upper), sourceLease: lease)), false)
        case .list:
            send(.processes(host.list()), false)
        case .wait(let name):
            send(try await host.wait(name), false)
        case .kill(let name):
            try await host.kill(name)
            send(.killed, false)
        case .logs(let name, let offset, let follow):
            try await self.logs(name, from: offset, follow: follow, host: host, send: send)
        case .migrate(let name, let node, let mode, let limits):
            if host.containers.holds(name) {
                guard mode == .weak else {
                    throw ProcessError(
                        "'\(name)' is a container: it moves weakly only (--mode weak: its files move, its processes start again), as this kernel cannot capture a native process's execution state (no CRIU)"
                    )
                }
                send(.report(try await host.containers.move(name, to: node)), false)
                return
            }
            let progress = Throttle()
            let report = try await host.migrate(name, to: node, mode: mode, limits: limits) { sent, total in
                if progress.due() { send(.progress(sent: sent, total: total), true) }
            }
            send(.report(report), false)
        case .pull(let name, let mode):
            send(.report(try await self.pull(name, mode: mode, host: host)), false)
        case .evaluate(let spec, let code):
            try await self.evaluate(spec, code: code, host: host, send: send)
        case .code(let digest):
            guard let digest = ModuleDigest(hex: digest), let bytes = host.code.bytes(of: digest) else {
                throw ErrorMessage(code: .notFound, message: "node \(host.node) holds no module \(digest)")
            }
            send(.code(Data(bytes)), false)
        case .resources(let name):
            send(.resources(try host.resources(name)), false)
        case .call(let name, let message):
            send(try await host.call(name, message: [UInt8](message)), false)
        case .keptAnswer(let name, let ticket):
            send(try await host.keptAnswer(name, ticket: ticket), false)
        case .holds(let name):
            send(.holds(host.holds(name)), false)
        case .layer(let id):
            send(.layer(try host.lentLayer(id)), false)
        case .load:
            send(.load(host.load()), false)
        case .loadData(let name, let bytes):
            send(.dataLoaded(bytes: try host.dataSets.load(name, bytes)), false)
        case .giveWork(let node, let load):
            send(await balancer.give(to: node, load: load), false)
        }
    }

    private static func logs(
        _ name: String,
        from offset: Int,
        follow: Bool,
        host: ProcessHost,
        send: @escaping @Sendable (NodeReply, Bool) -> Void
    ) async throws {
        var offset = offset
        while true {
            let reply = try host.output(name, from: offset)
            guard case .output(let bytes, let next, let ended) = reply else {
                send(reply, false)
                return
            }
            offset = next
            let more = follow && !ended
            if !bytes.isEmpty || !more { send(reply, more) }
            guard more else { return }
            if bytes.isEmpty { try await Task.sleep(for: .milliseconds(100)) }
        }
    }

    /// Receiver-initiated migration: this node asks the node that holds a process (or the most
    /// loaded other node, for any of its processes) to send it here.
    private static func pull(_ name: String?, mode: MoveMode, host: ProcessHost) async throws -> MoveReport {
        let (source, process) = try await host.findProcessToPull(name)
        let client = try await NodeClient.connect(to: source)
        defer { Task { await client.close() } }
        for try await reply in client.stream(.migrate(process, to: host.node, mode: mode)) {
            if case .report(var report) = reply {
                report.initiative = "receiver"
                return report
            }
        }
        throw ErrorMessage(code: .unavailable, message: "the node at \(source) ended the move without a report")
    }

    /// Remote evaluation: the module runs here, against this node's resources, and its result
    /// goes back; the process is forgotten after.
    private static func evaluate(
        _ spec: ProcessSpec,
        code: Data?,
        host: ProcessHost,
        send: @escaping @Sendable (NodeReply, Bool) -> Void
    ) async throws {
        var spec = spec
        spec.name = "eval-" + String(UInt32.random(in: 0...UInt32.max), radix: 16)
        do {
            // The caller's computation, answered where it was sent: it runs its module as
            // compiled, without the safe points that let a process be held and moved between host
            // calls (a fifth to a third of a tight loop's time on the interpreter).
            _ = try await host.spawn(spec, code: code.map { [UInt8]($0) }, movable: false)
        } catch let need as ProcessHost.NeedCode {
            send(.needCode(need.digest), false)
            return
        }
        let outcome = try await host.wait(spec.name)
        try? await host.kill(spec.name)
        send(outcome, false)
    }

    /// The error a client sees: what went wrong, in words, under a code a script can test.
    static func wireError(_ error: any Error) -> ErrorMessage {
        switch error {
        case let error as ErrorMessage: error
        case let error as ProcessError: ErrorMessage(code: .invalidArgument, message: error.description)
        case let error as CodeRefusal: ErrorMessage(code: .invalidArgument, message: "refused before running: \(error)")
        case let error as GuestError: ErrorMessage(code: .invalidArgument, message: error.description)
        case let error as MigrationError: ErrorMessage(code: .unavailable, message: error.description)
        default: ErrorMessage(code: .unavailable, message: "\(error)")
        }
    }
}

/// Lets a progress report through at most every 200 ms.
final class Throttle: @unchecked Sendable {
    // Sendable: called from one move's thread.
    private var last = ContinuousClock.now - .seconds(1)

    func due() -> Bool {
        let now = ContinuousClock.now
        guard now - self.last >= .milliseconds(200) else { return false }
        self.last = now
        return true
    }
}

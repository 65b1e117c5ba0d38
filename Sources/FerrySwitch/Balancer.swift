import FerryEndpoints
import NIOConcurrencyHelpers
import Synchronization

/// How a switch chooses a backend for a new connection.
public enum BalancePolicy: String, Sendable, CaseIterable {
    /// Each backend in turn.
    case roundRobin = "roundrobin"
    /// The backend with the fewest open connections.
    case leastConnections = "leastconn"
    /// In proportion to each backend's weight (smooth weighted round robin, as nginx does it).
    case weighted
    /// A consistent hash of the client's address: the same client reaches the same backend, and
    /// a backend going away moves only its own clients.
    case source
    /// Locality-aware request distribution (LARD, for the l7 switch): the same content goes to
    /// the same backend, so its cache stays hot, until that backend is overloaded; new content
    /// goes to the least loaded. Without content to go by (l4), least connections.
    case locality = "lard"
}

/// Where a backend is reached: a TCP endpoint, or a Unix socket on this host (`unix:PATH`, which
/// is where a handoff switch passes connections to).
public enum BackendAddress: Sendable, Hashable, CustomStringConvertible {
    case tcp(ServiceEndpoint)
    case unix(String)

    /// Parses `HOST:PORT` or `unix:PATH`.
    public init?(_ text: String) {
        if text.hasPrefix("unix:") {
            let path = String(text.dropFirst(5))
            guard path.hasPrefix("/") || path.hasPrefix(".") else { return nil }
            self = .unix(path)
        } else {
            guard let endpoint = ServiceEndpoint(text) else { return nil }
            self = .tcp(endpoint)
        }
    }

    public var description: String {
        switch self {
        case .tcp(let endpoint): "\(endpoint)"
        case .unix(let path): "unix:\(path)"
        }
    }
}

/// One backend as the switch is told of it.
public struct BackendSpec: Sendable, Equatable, CustomStringConvertible {
    public var address: BackendAddress
    public var weight: Int
    /// The group that l7 routing rules send requests to; nil for the default group.
    public var group: String?

    public init(address: BackendAddress, weight: Int = 1, group: String? = nil) {
        self.address = address
        self.weight = weight
        self.group = group
    }

    public init(endpoint: ServiceEndpoint, weight: Int = 1, group: String? = nil) {
        self.init(address: .tcp(endpoint), weight: weight, group: group)
    }

    /// Parses `[GROUP=]ADDRESS[@WEIGHT]`, ADDRESS being `HOST:PORT` or `unix:PATH`.
    public init?(_ text: String) {
        var text = Substring(text)
        var group: String?
        if let equals = text.firstIndex(of: "="), !text[..<equals].isEmpty,
            text[..<equals].allSatisfy({ $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" })
        {
            group = String(text[..<equals])
            text = text[text.index(after: equals)...]
        }
        var address = text
        var weight = 1
        if let at = text.lastIndex(of: "@") {
            guard let parsed = Int(text[text.index(after: at)...]), parsed >= 1 else { return nil }
            weight = parsed
            address = text[..<at]
        }
        guard let parsed = BackendAddress(String(address)) else { return nil }
        self.init(address: parsed, weight: weight, group: group)
    }

    public var description: String {
        (self.group.map { "\($0)=" } ?? "") + "\(self.address)" + (self.weight == 1 ? "" : "@\(self.weight)")
    }
}

/// The backends' state, and the choice of one for each connection; shared by the switch's threads.
///
/// Only the choice takes the lock. What every request also touches (a connection's release,
/// its answer's latency) is counted in atomics, so that the l7 switch's threads, which pick,
/// release and time a backend for each request, meet at the lock once a request, not three times
/// (at three they queued on its futex about once in twenty requests).
public final class Balancer: Sendable {
    /// One backend as the switch sees it now (a snapshot: ``backends``).
    public struct BackendState: Sendable, Equatable {
        public var spec: BackendSpec
        /// In rotation: not marked down by a failed connect or health check.
        public var up = true
        /// Connections open through it now.
        public var active = 0
        /// Connections made through it in all.
        public var total = 0
        /// Connects that failed.
        public var failures = 0
        /// Draining: it takes nothing new, and what it has open finishes.
        public var draining = false
        /// Its answers' latency, a moving average (each answer weighs a tenth), in milliseconds.
        public var latencyMilliseconds = 0.0
    }

    /// A backend's place in rotation, behind the lock.
    private struct Rotation {
        var up = true
        var draining = false
        /// When it came back into rotation, while its slow start lasts.
        var returnedAt: ContinuousClock.Instant?
        /// Slow start's credit: each pick that falls to a returning backend adds its share (5% at
        /// its return, growing linearly to 100%), and it takes the pick when the credit reaches 1.
        var credit = 0.0
        /// Smooth weighted round robin's running weight.
        var current = 0
    }

    /// A backend's counters, outside the lock.
    private final class Counters: Sendable {
        let active = Atomic<Int>(0)
        let total = Atomic<Int>(0)
        let failures = Atomic<Int>(0)
        /// The latency average's bits (a `Double`).
        let latency = Atomic<UInt64>(0)
    }

    private struct State {
        var rotation: [Rotation]
        /// Round robin's place, one per set of backends picked among (a route's group): one place
        /// for all would let requests of two groups taken in turn land on the same backend of each.
        var next: [Set<Int>: Int] = [:]
        /// LARD's assignment of content to backends.
        var assigned: [String: Int] = [:]
    }

    /// LARD's load bounds, in requests in flight: below `low` a backend is idle enough to take
    /// content off an overloaded one, above `high` it is overloaded, and at twice `high` its
    /// content moves to the least loaded whatever the others' load.
    public struct LocalityBounds: Sendable {
        public var low: Int
        public var high: Int

        public init(low: Int = 25, high: Int = 65) {
            self.low = low
            self.high = high
        }
    }

    /// Content names LARD remembers; past this the table starts afresh.
    static let maxAssignments = 1 << 16

    public let policy: BalancePolicy
    /// At most this many open connections per backend; nil for no limit.
    public let maxConnections: Int?
    public let locality: LocalityBounds
    /// How long a backend that comes back takes to reach its full share; none when nil.
    public let slowStart: Duration?
    private let clock: @Sendable () -> ContinuousClock.Instant
    private let specs: [BackendSpec]
    private let counters: [Counters]
    private let state: NIOLockedValueBox<State>
    /// The consistent-hash ring: points sorted by hash, each naming a backend.
    private let ring: [(point: UInt64, backend: Int)]

    public init(
        backends: [BackendSpec],
        policy: BalancePolicy,
        maxConnections: Int? = nil,
        locality: LocalityBounds = LocalityBounds(),
        slowStart: Duration? = nil,
        clock: @escaping @Sendable () -> ContinuousClock.Instant = { .now }
    ) {
        self.policy = policy
        self.locality = locality
        self.slowStart = slowStart
        self.clock = clock
        self.maxConnections = maxConnections
        self.specs = backends
        self.counters = backends.map { _ in Counters() }
        self.state = NIOLockedValueBox(State(rotation: Array(repeating: Rotation(), count: backends.count)))
        var ring: [(UInt64, Int)] = []
        for (index, backend) in backends.enumerated() {
            // 100 points per unit of weight smooth out the share each backend gets.
            for replica in 0..<(100 * backend.weight) {
                ring.append((Self.hash(Array("\(backend.address)#\(replica)".utf8)), index))
            }
        }
        self.ring = ring.sorted { $0.0 < $1.0 }
    }

    /// A snapshot of every backend's state.
    public var backends: [BackendState] {
        let rotation = self.state.withLockedValue { $0.rotation }
        return self.specs.indices.map { index in
            let counters = self.counters[index]
            return BackendState(
                spec: self.specs[index],
                up: rotation[index].up,
                active: counters.active.load(ordering: .relaxed),
                total: counters.total.load(ordering: .relaxed),
                failures: counters.failures.load(ordering: .relaxed),
                draining: rotation[index].draining,
                latencyMilliseconds: Double(bitPattern: counters.latency.load(ordering: .relaxed))
            )
        }
    }

    /// The spec of backend `index`, as it was given.
    public func spec(_ index: Int) -> BackendSpec { self.specs[index] }

    /// Chooses a backend for a connection from `client` (its address bytes), or for a request
    /// for `content`, and counts it as open; nil when none is up and below its limit. Backends
    /// in `excluding` were tried already (or are outside the request's group).
    public func pick(client: [UInt8], content: String? = nil, excluding: Set<Int> = []) -> Int? {
        self.state.withLockedValue { state in
            let count = state.rotation.count
            let limit = self.maxConnections ?? .max
            let now = self.slowStart != nil && state.rotation.contains { $0.returnedAt != nil } ? self.clock() : nil
            /// Backends in slow start passed over for this pick.
            var skipped = Set<Int>()
            if state.next.count > 64, state.next[excluding] == nil { state.next.removeAll(keepingCapacity: true) }
            var next: Int {
                get { state.next[excluding] ?? 0 }
                set { state.next[excluding] = newValue }
            }
            // Releases come without the lock: a backend's load may fall while this looks, never rise.
            func load(_ index: Int) -> Int { self.counters[index].active.load(ordering: .relaxed) }
            func eligible(_ index: Int) -> Bool {
                let backend = state.rotation[index]
                return backend.up && !backend.draining && load(index) < limit && !excluding.contains(index)
                    && !skipped.contains(index)
            }
            /// The eligible backend with the fewest open, ties going round robin from `next`.
            func leastLoaded() -> Int? {
                var best: Int?
                var bestLoad = Int.max
                for step in 0..<count {
                    let index = (next + step) % count
                    if eligible(index), load(index) < bestLoad {
                        best = index
                        bestLoad = load(index)
                    }
                }
                return best
            }
            while true {
                var chosen: Int?
                switch self.policy {
                case .roundRobin:
                    let start = next
                    for step in 0..<count where eligible((start + step) % count) {
                        chosen = (start + step) % count
                        break
                    }
                    if let chosen { next = (chosen + 1) % count }
                case .leastConnections:
                    chosen = leastLoaded()
                    if let chosen { next = (chosen + 1) % count }
                case .weighted:
                    let candidates = (0..<count).filter(eligible)
                    let total = candidates.reduce(0) { $0 + self.specs[$1].weight }
                    for index in candidates { state.rotation[index].current += self.specs[index].weight }
                    chosen = candidates.max { state.rotation[$0].current < state.rotation[$1].current }
                    if let chosen { state.rotation[chosen].current -= total }
                case .source:
                    let point = Self.hash(client)
                    let start = self.ring.firstIndex { $0.point >= point } ?? 0
                    for step in 0..<self.ring.count where eligible(self.ring[(start + step) % self.ring.count].backend)
                    {
                        chosen = self.ring[(start + step) % self.ring.count].backend
                        break
                    }
                case .locality where content != nil:
                    guard let least = leastLoaded() else { break }
                    if let current = state.assigned[content!], eligible(current),
                        !(load(current) > self.locality.high && load(least) < self.locality.low),
                        load(current) < 2 * self.locality.high
                    {
                        chosen = current
                    } else {
                        if state.assigned.count >= Self.maxAssignments {
                            state.assigned.removeAll(keepingCapacity: true)
                        }
                        state.assigned[content!] = least
                        next = (least + 1) % count
                        chosen = least
                    }
                case .locality:
                    chosen = leastLoaded()
                    if let chosen { next = (chosen + 1) % count }
                }
                guard let chosen else { return nil }
                // A backend in slow start takes only its earned part of the picks that fall to it.
                if let now, let returnedAt = state.rotation[chosen].returnedAt {
                    let share = (now - returnedAt) / self.slowStart!
                    if share >= 1 {
                        state.rotation[chosen].returnedAt = nil
                    } else {
                        state.rotation[chosen].credit += max(share, 0.05)
                        guard state.rotation[chosen].credit >= 1 else {
                            skipped.insert(chosen)
                            continue
                        }
                        state.rotation[chosen].credit -= 1
                    }
                }
                // Under the lock, so that two picks cannot both take a backend's last place.
                self.counters[chosen].active.add(1, ordering: .relaxed)
                self.counters[chosen].total.add(1, ordering: .relaxed)
                return chosen
            }
        }
    }

    /// A connection through `backend` closed (or its connect failed).
    public func release(_ backend: Int) {
        self.counters[backend].active.subtract(1, ordering: .relaxed)
    }

    /// `backend` answered a request in `nanoseconds` (the l7 switch's requests).
    public func answered(_ backend: Int, nanoseconds: UInt64) {
        let milliseconds = Double(nanoseconds) / 1e6
        let counters = self.counters[backend]
        var old = counters.latency.load(ordering: .relaxed)
        while true {
            let average = Double(bitPattern: old)
            let new = average == 0 ? milliseconds : average * 0.9 + milliseconds * 0.1
            let (exchanged, found) = counters.latency.compareExchange(
                expected: old,
                desired: new.bitPattern,
                ordering: .relaxed
            )
            if exchanged { return }
            old = found
        }
    }

    /// A connect to `backend` failed: it leaves rotation until a health check finds it again.
    public func connectFailed(_ backend: Int) {
        self.counters[backend].failures.add(1, ordering: .relaxed)
        self.state.withLockedValue { $0.rotation[backend].up = false }
    }

    /// The backend given as `ADDRESS` (as `--backend` named it, without group or weight).
    public func index(of address: String) -> Int? {
        self.specs.firstIndex { $0.address.description == address }
    }

    /// Starts (or ends) draining a backend.
    public func setDraining(_ backend: Int, _ draining: Bool) {
        self.state.withLockedValue { $0.rotation[backend].draining = draining }
    }

    /// A health check's verdict; returns whether it changed.
    @discardableResult
    public func mark(_ backend: Int, up: Bool) -> Bool {
        self.state.withLockedValue { state in
            let changed = state.rotation[backend].up != up
            state.rotation[backend].up = up
            if changed, up, self.slowStart != nil {
                state.rotation[backend].returnedAt = self.clock()
                state.rotation[backend].credit = 0
            }
            return changed
        }
    }

    /// FNV-1a, 64 bits.
    static func hash(_ bytes: [UInt8]) -> UInt64 {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in bytes { hash = (hash ^ UInt64(byte)) &* 0x100_0000_01b3 }
        // Mix the bits so that nearby inputs land far apart on the ring.
        hash ^= hash >> 33
        hash = hash &* 0xff51_afd7_ed55_8ccd
        hash ^= hash >> 33
        return hash
    }
}

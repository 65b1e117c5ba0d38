import FerryEndpoints
import NIOConcurrencyHelpers

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
public final class Balancer: Sendable {
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
        /// When it came back into rotation, while its slow start lasts.
        var returnedAt: ContinuousClock.Instant?
        /// Slow start's credit: each pick that falls to a returning backend adds its share (5% at
        /// its return, growing linearly to 100%), and it takes the pick when the credit reaches 1.
        var credit = 0.0
        /// Smooth weighted round robin's running weight.
        var current = 0
    }

    private struct State {
        var backends: [BackendState]
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
        self.state = NIOLockedValueBox(State(backends: backends.map { BackendState(spec: $0) }))
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
    public var backends: [BackendState] { self.state.withLockedValue { $0.backends } }

    /// Chooses a backend for a connection from `client` (its address bytes), or for a request
    /// for `content`, and counts it as open; nil when none is up and below its limit. Backends
    /// in `excluding` were tried already (or are outside the request's group).
    public func pick(client: [UInt8], content: String? = nil, excluding: Set<Int> = []) -> Int? {
        self.state.withLockedValue { state in
            let count = state.backends.count
            let limit = self.maxConnections ?? .max
            let now = self.slowStart != nil && state.backends.contains { $0.returnedAt != nil } ? self.clock() : nil
            /// Backends in slow start passed over for this pick.
            var skipped = Set<Int>()
            if state.next.count > 64, state.next[excluding] == nil { state.next.removeAll(keepingCapacity: true) }
            var next: Int {
                get { state.next[excluding] ?? 0 }
                set { state.next[excluding] = newValue }
            }
            func eligible(_ index: Int) -> Bool {
                let backend = state.backends[index]
                return backend.up && !backend.draining && backend.active < limit && !excluding.contains(index)
                    && !skipped.contains(index)
            }
            /// The eligible backend with the fewest open, ties going round robin from `next`.
            func leastLoaded() -> Int? {
                var best: Int?
                for step in 0..<count {
                    let index = (next + step) % count
                    if eligible(index), best == nil || state.backends[index].active < state.backends[best!].active {
                        best = index
                    }
                }
                return best
            }
            while true {
                var chosen: Int?
                switch self.policy {
                case .roundRobin:
                    let start = next
                    chosen = (0..<count).map { (start + $0) % count }.first(where: eligible)
                    if let chosen { next = (chosen + 1) % count }
                case .leastConnections:
                    chosen = leastLoaded()
                    if let chosen { next = (chosen + 1) % count }
                case .weighted:
                    let candidates = (0..<count).filter(eligible)
                    let total = candidates.reduce(0) { $0 + state.backends[$1].spec.weight }
                    for index in candidates { state.backends[index].current += state.backends[index].spec.weight }
                    chosen = candidates.max { state.backends[$0].current < state.backends[$1].current }
                    if let chosen { state.backends[chosen].current -= total }
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
                    func load(_ index: Int) -> Int { state.backends[index].active }
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
                if let now, let returnedAt = state.backends[chosen].returnedAt {
                    let share = (now - returnedAt) / self.slowStart!
                    if share >= 1 {
                        state.backends[chosen].returnedAt = nil
                    } else {
                        state.backends[chosen].credit += max(share, 0.05)
                        guard state.backends[chosen].credit >= 1 else {
                            skipped.insert(chosen)
                            continue
                        }
                        state.backends[chosen].credit -= 1
                    }
                }
                state.backends[chosen].active += 1
                state.backends[chosen].total += 1
                return chosen
            }
        }
    }

    /// A connection through `backend` closed (or its connect failed).
    public func release(_ backend: Int) {
        self.state.withLockedValue { $0.backends[backend].active -= 1 }
    }

    /// `backend` answered a request in `nanoseconds` (the l7 switch's requests).
    public func answered(_ backend: Int, nanoseconds: UInt64) {
        let milliseconds = Double(nanoseconds) / 1e6
        self.state.withLockedValue { state in
            let average = state.backends[backend].latencyMilliseconds
            state.backends[backend].latencyMilliseconds =
                average == 0 ? milliseconds : average * 0.9 + milliseconds * 0.1
        }
    }

    /// A connect to `backend` failed: it leaves rotation until a health check finds it again.
    public func connectFailed(_ backend: Int) {
        self.state.withLockedValue { state in
            state.backends[backend].failures += 1
            state.backends[backend].up = false
        }
    }

    /// The backend given as `ADDRESS` (as `--backend` named it, without group or weight).
    public func index(of address: String) -> Int? {
        self.state.withLockedValue { state in
            state.backends.firstIndex { $0.spec.address.description == address }
        }
    }

    /// Starts (or ends) draining a backend.
    public func setDraining(_ backend: Int, _ draining: Bool) {
        self.state.withLockedValue { $0.backends[backend].draining = draining }
    }

    /// A health check's verdict; returns whether it changed.
    @discardableResult
    public func mark(_ backend: Int, up: Bool) -> Bool {
        self.state.withLockedValue { state in
            let changed = state.backends[backend].up != up
            state.backends[backend].up = up
            if changed, up, self.slowStart != nil {
                state.backends[backend].returnedAt = self.clock()
                state.backends[backend].credit = 0
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

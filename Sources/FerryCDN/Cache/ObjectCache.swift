import NIOConcurrencyHelpers

/// The edge's in-memory object store: primary key (the request target) → up to `maxVariantsPerKey`
/// variants told apart by their `VaryKey`, within a byte budget.
///
/// Eviction is SIEVE (Zhang et al., NSDI '24) rather than LRU: a hit only sets a `visited` bit
/// instead of moving the object to the head of a list, and the eviction hand sweeps from the oldest
/// object, clearing bits and removing the first unvisited one. Objects touched once by a crawler or a
/// scan leave quickly while popular ones stay, which gives web workloads a better hit ratio than LRU;
/// for a simple "A, B, C, touch A, insert D" it evicts B, as LRU would.
///
/// Thread-safe: each shard is a lock around its own SIEVE queue and a `1/shards` share of the
/// budget. One shard (the default) keeps eviction exact; a few more cut contention when many event
/// loops hit the cache at once. All variants of a key live in the same shard.
public final class ObjectCache: Sendable {
    /// Bytes charged per object on top of its body and `headCost`: the queue node and index entry.
    public static let entryOverhead = 128

    public let byteLimit: Int
    /// The largest object (by `cost`) stored. Default: an eighth of a shard's budget, so a single
    /// huge response can never flush most of the cache's working set to make room for itself.
    public let maxObjectBytes: Int
    public let maxVariantsPerKey: Int
    private let shards: [Shard]

    public init(byteLimit: Int, maxObjectBytes: Int? = nil, maxVariantsPerKey: Int = 8, shards: Int = 1) {
        let shardCount = max(1, shards)
        let shardBudget = max(0, byteLimit) / shardCount
        self.byteLimit = max(0, byteLimit)
        self.maxObjectBytes = min(maxObjectBytes ?? shardBudget / 8, shardBudget)
        self.maxVariantsPerKey = max(1, maxVariantsPerKey)
        self.shards = (0..<shardCount).map { _ in Shard(budget: shardBudget) }
    }

    /// What an object counts against the budget: body, head estimate and fixed overhead.
    public static func cost(key: String, object: CachedObject) -> Int {
        entryOverhead + key.utf8.count + object.headCost + object.body.readableBytes
    }

    /// The variant of `key` that answers a request with `requestHeaders`, marked as used.
    public func lookup(
        _ key: String,
        requestHeaders: some Sequence<(name: String, value: String)>
    ) -> CachedObject? {
        self.shard(for: key).state.withLockedValue { $0.lookup(key, requestHeaders: requestHeaders) }
    }

    /// Stores `object` under `key`, replacing the variant with the same `VaryKey` and evicting others
    /// as needed. Returns false, storing nothing and dropping the variant it would have replaced,
    /// when the object costs more than `maxObjectBytes` or has `Vary: *`.
    @discardableResult
    public func insert(_ object: CachedObject, forKey key: String) -> Bool {
        let cost = Self.cost(key: key, object: object)
        let maxVariants = self.maxVariantsPerKey
        let maxObject = self.maxObjectBytes
        return self.shard(for: key).state.withLockedValue { state in
            guard cost <= maxObject, !object.varyKey.isWildcard else {
                if let slot = state.slot(key, object.varyKey) { state.remove(slot) }
                return false
            }
            return state.insert(key, object, cost: cost, maxVariants: maxVariants, replacing: nil)
        }
    }

    /// Replaces the variant with `object`'s `VaryKey` after a revalidation, only if it is still
    /// stored: a purge while the origin was being asked must not be undone. Returns whether it was.
    @discardableResult
    public func replace(_ object: CachedObject, forKey key: String) -> Bool {
        let cost = Self.cost(key: key, object: object)
        let maxVariants = self.maxVariantsPerKey
        let maxObject = self.maxObjectBytes
        return self.shard(for: key).state.withLockedValue { state in
            guard let slot = state.slot(key, object.varyKey) else { return false }
            guard cost <= maxObject else {
                state.remove(slot)
                return false
            }
            return state.insert(key, object, cost: cost, maxVariants: maxVariants, replacing: slot)
        }
    }

    /// Removes the one variant of `key` with `varyKey`; returns whether there was one.
    @discardableResult
    public func remove(_ key: String, varyKey: VaryKey) -> Bool {
        self.shard(for: key).state.withLockedValue { state in
            guard let slot = state.slot(key, varyKey) else { return false }
            state.remove(slot)
            return true
        }
    }

    /// Removes every variant of `key`; returns how many there were.
    @discardableResult
    public func purge(_ key: String) -> Int {
        self.shard(for: key).state.withLockedValue { $0.purge(key) }
    }

    /// Removes every variant of every key starting with `prefix` (bytewise); returns how many.
    @discardableResult
    public func purge(prefix: String) -> Int {
        var removed = 0
        for shard in self.shards {
            removed += shard.state.withLockedValue { state in
                let keys = state.index.keys.filter { $0.utf8.starts(with: prefix.utf8) }
                return keys.reduce(0) { $0 + state.purge($1) }
            }
        }
        return removed
    }

    /// Stored objects, counting each variant.
    public var count: Int { self.sum { $0.count } }
    /// Bytes charged against the budget (see `cost`); never more than `byteLimit`.
    public var bytes: Int { self.sum { $0.bytes } }
    /// Objects removed to make room (budget or variant limit), not by purges or replacements.
    public var evictions: Int { self.sum { $0.evictions } }

    private func sum(_ value: (SieveQueue) -> Int) -> Int {
        self.shards.reduce(0) { total, shard in total + shard.state.withLockedValue { value($0) } }
    }

    private func shard(for key: String) -> Shard {
        guard self.shards.count > 1 else { return self.shards[0] }
        return self.shards[Int(UInt(bitPattern: key.hashValue) % UInt(self.shards.count))]
    }

    private final class Shard: Sendable {
        let state: NIOLockedValueBox<SieveQueue>
        init(budget: Int) { self.state = NIOLockedValueBox(SieveQueue(budget: budget)) }
    }
}

/// One shard's objects: a SIEVE queue (newest at `head`, oldest at `tail`) kept as a slab of nodes
/// linked by index, so there is no per-object class to allocate or reference-count, and an index from
/// key to the slots of its variants (oldest first).
struct SieveQueue {
    struct Node {
        var key: String
        var object: CachedObject
        var cost: Int
        var visited: Bool
        /// Neighbour toward the head (newer) and toward the tail (older); -1 for none.
        var newer: Int
        var older: Int
    }

    let budget: Int
    private(set) var nodes: [Node?] = []
    private var free: [Int] = []
    private(set) var index: [String: [Int]] = [:]
    private var head = -1
    private var tail = -1
    private var hand = -1
    private(set) var count = 0
    private(set) var bytes = 0
    private(set) var evictions = 0

    init(budget: Int) {
        self.budget = budget
    }

    mutating func lookup(
        _ key: String,
        requestHeaders: some Sequence<(name: String, value: String)>
    ) -> CachedObject? {
        guard let slots = self.index[key] else { return nil }
        // Variants of one key nearly always vary on the same fields: compute the request's key once.
        var requestKey: VaryKey?
        for slot in slots {
            guard let stored = self.nodes[slot]?.object.varyKey, !stored.isWildcard else { continue }
            if !stored.fields.isEmpty {
                if requestKey?.fields != stored.fields {
                    requestKey = VaryKey(normalisedFields: stored.fields, requestHeaders: requestHeaders)
                }
                guard requestKey == stored else { continue }
            }
            self.nodes[slot]?.visited = true
            return self.nodes[slot]?.object
        }
        return nil
    }

    func slot(_ key: String, _ varyKey: VaryKey) -> Int? {
        self.index[key]?.first { self.nodes[$0]?.object.varyKey == varyKey }
    }

    /// Stores the object, replacing `replacing` in place (a refresh keeps its queue position and counts
    /// as a use) or else any variant with the same key, then evicts until it fits.
    mutating func insert(
        _ key: String,
        _ object: CachedObject,
        cost: Int,
        maxVariants: Int,
        replacing: Int?
    ) -> Bool {
        guard cost <= self.budget else { return false }
        if let slot = replacing, var node = self.nodes[slot] {
            self.bytes += cost - node.cost
            node.object = object
            node.cost = cost
            node.visited = true
            self.nodes[slot] = node
            self.evict(keeping: slot)
            return true
        }
        var visited = false
        if let existing = self.slot(key, object.varyKey) {
            // A new response for a variant already held keeps the old one's popularity.
            visited = self.nodes[existing]?.visited ?? false
            self.remove(existing)
        } else if let variants = self.index[key], variants.count >= maxVariants {
            self.remove(variants[0])
            self.evictions += 1
        }
        while self.bytes + cost > self.budget, self.count > 0 {
            self.evictOne(keeping: -1)
        }
        let node = Node(key: key, object: object, cost: cost, visited: visited, newer: -1, older: self.head)
        let slot: Int
        if let reused = self.free.popLast() {
            slot = reused
            self.nodes[slot] = node
        } else {
            slot = self.nodes.count
            self.nodes.append(node)
        }
        if self.head >= 0 { self.nodes[self.head]?.newer = slot }
        self.head = slot
        if self.tail < 0 { self.tail = slot }
        self.index[key, default: []].append(slot)
        self.count += 1
        self.bytes += cost
        return true
    }

    private mutating func evict(keeping slot: Int) {
        while self.bytes > self.budget, self.count > 1 {
            self.evictOne(keeping: slot)
        }
    }

    /// SIEVE: from the hand (or the tail), skip and clear visited objects, evict the first unvisited
    /// one, and leave the hand at its newer neighbour. `keeping` is never evicted.
    private mutating func evictOne(keeping: Int) {
        var slot = self.hand >= 0 ? self.hand : self.tail
        while let node = self.nodes[slot], node.visited || slot == keeping {
            self.nodes[slot]?.visited = false
            slot = node.newer >= 0 ? node.newer : self.tail
        }
        self.hand = slot
        self.remove(slot)
        self.evictions += 1
    }

    mutating func purge(_ key: String) -> Int {
        guard let slots = self.index[key] else { return 0 }
        for slot in slots { self.remove(slot) }
        return slots.count
    }

    mutating func remove(_ slot: Int) {
        guard let node = self.nodes[slot] else { return }
        if self.hand == slot { self.hand = node.newer }
        if node.newer >= 0 { self.nodes[node.newer]?.older = node.older } else { self.head = node.older }
        if node.older >= 0 { self.nodes[node.older]?.newer = node.newer } else { self.tail = node.newer }
        if var slots = self.index[node.key] {
            slots.removeAll { $0 == slot }
            self.index[node.key] = slots.isEmpty ? nil : slots
        }
        self.nodes[slot] = nil
        self.free.append(slot)
        self.count -= 1
        self.bytes -= node.cost
    }
}

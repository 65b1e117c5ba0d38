#if canImport(Darwin)
import Darwin
#elseif canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Weighted rendezvous (highest random weight) hashing: each key goes to the member that scores it
/// highest, so that one object stays on one edge (its cache is hit, not filled on every edge) and
/// removing a member moves only the keys that were on it.
///
/// The hash is FNV-1a 64 with a fixed finalizer, never Swift's `Hasher`, which is seeded per
/// process: every redirector must send a path to the same edge. A member's score for a key is
/// `-weight / ln(u)`, with `u` the pair's hash mapped into (0, 1), which gives each member a share
/// of keys proportional to its weight (Schindelhauer and Schomaker's weighted distributed hash).
public struct RendezvousHash: Sendable {
    public struct Member: Sendable, Hashable {
        public let name: String
        public let weight: Double
        /// The member's part of every score, computed once from its name.
        public let seed: UInt64

        public init(name: String, weight: Double) {
            self.name = name
            self.weight = weight
            self.seed = RendezvousHash.seed(name)
        }
    }

    public let members: [Member]

    public init(_ members: [Member]) {
        self.members = members
    }

    public init(_ members: [(name: String, weight: Double)]) {
        self.members = members.map { Member(name: $0.name, weight: $0.weight) }
    }

    /// The index in ``members`` of the member the key goes to; nil when no member has a positive
    /// weight. Ties (all but impossible) go to the smaller name, so that order does not matter.
    public func index(for key: some StringProtocol) -> Int? {
        let keyHash = Self.hash(key.utf8)
        var best: (index: Int, score: Double)?
        for (index, member) in self.members.enumerated() {
            let score = Self.score(key: keyHash, seed: member.seed, weight: member.weight)
            guard score > -.infinity else { continue }
            if let current = best {
                guard
                    score > current.score || (score == current.score && member.name < self.members[current.index].name)
                else { continue }
            }
            best = (index, score)
        }
        return best?.index
    }

    /// The member the key goes to.
    public func member(for key: some StringProtocol) -> Member? {
        self.index(for: key).map { self.members[$0] }
    }

    /// FNV-1a, 64 bits.
    public static func hash(_ bytes: some Sequence<UInt8>) -> UInt64 {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in bytes { hash = (hash ^ UInt64(byte)) &* 0x100_0000_01b3 }
        return hash
    }

    /// A member's seed: its name's hash, mixed so that similar names get unrelated seeds.
    public static func seed(_ name: String) -> UInt64 {
        Self.mix(Self.hash(name.utf8))
    }

    /// The member's score for a key (the key's ``hash(_:)``); higher wins, and a member without a
    /// positive weight scores minus infinity.
    public static func score(key: UInt64, seed: UInt64, weight: Double) -> Double {
        guard weight > 0 else { return -.infinity }
        let bits = Self.mix(key ^ seed)
        // The top 53 bits, centred in their interval: never 0 (whose log is -infinity) nor 1 (0).
        let unit = (Double(bits >> 11) + 0.5) * 0x1p-53
        return -weight / log(unit)
    }

    /// SplitMix64's finalizer: FNV-1a alone leaves short, similar keys' hashes close together.
    static func mix(_ value: UInt64) -> UInt64 {
        var z = value
        z = (z ^ (z >> 30)) &* 0xbf58_476d_1ce4_e5b9
        z = (z ^ (z >> 27)) &* 0x94d0_49bb_1331_11eb
        return z ^ (z >> 31)
    }
}

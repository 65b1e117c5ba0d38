/// One family's networks sorted by address, to work out how far a DNS answer may be shared.
///
/// An EDNS Client Subnet answer tells the resolver it holds for every client in `client/scope`
/// (RFC 7871). The matched network's length is not always enough: with `10.1.0.0/16` east and
/// `10.1.2.0/24` west, an answer for `10.1.5.5` scoped /16 would be cached for `10.1.2.3` too, and
/// send it east. The scope must also be longer than the prefix the client shares with any network
/// that does not hold it (/22 here). That network is found next to the client in address order,
/// since the shared prefix only shrinks further away.
struct SortedNetworks<Key: FixedWidthInteger & UnsignedInteger & Sendable>: Sendable {
    private let addresses: [Key]
    private let lengths: [Int]

    /// `networks` must be masked and distinct.
    init(_ networks: [(address: Key, prefixLength: Int)]) {
        let sorted = networks.sorted { ($0.address, $0.prefixLength) < ($1.address, $1.prefixLength) }
        self.addresses = sorted.map(\.address)
        self.lengths = sorted.map(\.prefixLength)
    }

    /// The networks that have longer networks inside them, as (address, length).
    var nesting: Set<Pair> {
        var result: Set<Pair> = []
        // Sorted by address then length, whatever lies inside a network comes right after it.
        for index in self.addresses.indices.dropLast() {
            let mask = Self.mask(self.lengths[index])
            if self.addresses[index + 1] & mask == self.addresses[index] {
                result.insert(Pair(address: self.addresses[index], prefixLength: self.lengths[index]))
            }
        }
        return result
    }

    struct Pair: Hashable {
        var address: Key
        var prefixLength: Int
    }

    /// The ECS scope for a client whose longest match is `matched` bits long (0 when none): at least
    /// that, and one more than the longest prefix it shares with a network that does not hold it.
    func scope(for client: Key, matched: Int) -> Int {
        // The first network above the client holds it not (a network holding it starts at or below).
        var upper = self.addresses.count
        var lower = 0
        while lower < upper {
            let middle = (lower + upper) / 2
            if self.addresses[middle] <= client { lower = middle + 1 } else { upper = middle }
        }
        var shared = -1
        if lower < self.addresses.count {
            shared = (self.addresses[lower] ^ client).leadingZeroBitCount
        }
        // Below, skip the networks that hold the client (at most one per length).
        var below = lower - 1
        while below >= 0, client & Self.mask(self.lengths[below]) == self.addresses[below] { below -= 1 }
        if below >= 0 {
            shared = max(shared, (self.addresses[below] ^ client).leadingZeroBitCount)
        }
        return max(matched, shared + 1)
    }

    static func mask(_ length: Int) -> Key {
        length == 0 ? 0 : Key.max << (Key.bitWidth - length)
    }
}

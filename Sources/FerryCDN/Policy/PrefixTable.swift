/// The networks of one prefix length, by their (masked) address: an open-addressing table with a
/// multiplicative hash, since Swift's seeded `Hasher` costs more than the probe itself and the keys
/// come from a trusted file, not from clients.
struct PrefixTable<Key: FixedWidthInteger & UnsignedInteger & Sendable>: Sendable {
    struct Value: Sendable {
        /// The index of the network's region.
        var region: Int32
        /// Whether longer networks lie inside this one: then the ECS scope must be worked out.
        var hasNested: Bool
    }

    let prefixLength: Int
    let mask: Key
    private let keys: [Key]
    /// What is stored per slot; a region of -1 marks an empty slot.
    private let values: [Value]
    private let shift: UInt64

    /// `entries` must hold masked, distinct keys.
    init(prefixLength: Int, mask: Key, entries: [(key: Key, value: Value)]) {
        self.prefixLength = prefixLength
        self.mask = mask
        // A power of two at least twice the count: probes stay short and always reach an empty slot.
        var bits = 1
        while 1 << bits < 2 * entries.count { bits += 1 }
        self.shift = UInt64(64 - bits)
        var keys = [Key](repeating: 0, count: 1 << bits)
        var values = [Value](repeating: Value(region: -1, hasNested: false), count: 1 << bits)
        let slotMask = (1 << bits) - 1
        for (key, value) in entries {
            var slot = Self.slot(key, shift: self.shift)
            while values[slot].region >= 0 { slot = (slot + 1) & slotMask }
            keys[slot] = key
            values[slot] = value
        }
        self.keys = keys
        self.values = values
    }

    /// The value stored for an already-masked key.
    func value(for key: Key) -> Value? {
        let slotMask = self.values.count - 1
        var slot = Self.slot(key, shift: self.shift)
        while true {
            let value = self.values[slot]
            if value.region < 0 { return nil }
            if self.keys[slot] == key { return value }
            slot = (slot + 1) & slotMask
        }
    }

    /// Fibonacci hashing of the key folded to 64 bits: the high bits of the product depend on every
    /// bit of the key, and masked keys have their low bits clear.
    private static func slot(_ key: Key, shift: UInt64) -> Int {
        var folded = UInt64(truncatingIfNeeded: key)
        if Key.bitWidth > 64 { folded ^= UInt64(truncatingIfNeeded: key >> 64) }
        return Int(truncatingIfNeeded: (folded &* 0x9e37_79b9_7f4a_7c15) >> shift)
    }
}

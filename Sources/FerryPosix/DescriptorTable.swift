/// A table from descriptors to what owns them, indexed by the descriptor itself: descriptors are
/// small numbers the kernel reuses, so an array beats a dictionary on every event of a loop.
public struct DescriptorTable<Owner> {
    @usableFromInline var slots: [Owner?] = []

    public init() {}

    @inlinable
    public subscript(fd: Int32) -> Owner? {
        get { Int(fd) < self.slots.count ? self.slots[Int(fd)] : nil }
        set {
            if Int(fd) >= self.slots.count {
                guard newValue != nil else { return }
                self.slots += Array(repeating: nil, count: max(Int(fd) + 1 - self.slots.count, 64))
            }
            self.slots[Int(fd)] = newValue
        }
    }

    /// Every owner in the table, in descriptor order.
    public var owners: [Owner] { self.slots.compactMap { $0 } }
}

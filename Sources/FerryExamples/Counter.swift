import FerryObjects
import NIOConcurrencyHelpers

/// The counter of the README and of `ferry up`, in Swift: it implements the WIT interface in
/// `Interfaces/counter.wit` through the generated ``CounterObject``; its state is its value.
public final class Counter: CounterObject {
    private let value: NIOLockedValueBox<Int64>

    public init(state: [UInt8]? = nil) {
        var value: Int64 = 0
        for byte in (state ?? []).prefix(8) { value = value << 8 | Int64(byte) }
        self.value = NIOLockedValueBox(value)
    }

    public func increment(by: Int64) async throws -> Int64 {
        self.value.withLockedValue {
            $0 &+= by
            return $0
        }
    }

    public func get() async throws -> Int64 { self.value.withLockedValue { $0 } }

    public func state() async throws -> [UInt8] {
        let value = self.value.withLockedValue { $0 }
        return (0..<8).map { UInt8(truncatingIfNeeded: value >> (56 - 8 * $0)) }
    }

    /// The object type `counter`, optionally hosted in segment processes started by `launcher`.
    public static func type(name: String = "counter", segmentLauncher: SegmentLauncher? = nil) -> ObjectType {
        // A counter's methods only add: its calls run on the connection's event loop.
        ObjectType(name: name, segmentLauncher: segmentLauncher, runsOnEventLoop: true) { _, state in
            Counter(state: state)
        }
    }
}

import Foundation
import WasmKit

#if canImport(Glibc)
import Glibc
#endif

/// Where a guest's linear memory lies in this process, for the kernel to track or fill its pages
/// while the guest runs on another thread (live migration).
///
/// WasmKit on Linux reserves the whole 4 GiB a wasm32 memory may reach at once and grows it in
/// place (its mprotect bounds checks), so the base never moves. Where it cannot (software bounds
/// checks), memory is reallocated on growth and no region is given.
public struct GuestMemoryRegion: @unchecked Sendable, Equatable {
    // Sendable: an address; what is read or written there is the caller's to order.
    public let base: UnsafeMutableRawPointer
    /// Bytes the memory may grow to in place: 4 GiB.
    public static let reservedBytes = 1 << 32

    /// The region at `base`, if it stays put: its reservation covers all of `reservedBytes` in
    /// this process's address space.
    init?(base: UnsafeMutableRawPointer) {
        guard Self.isReserved(base, bytes: Self.reservedBytes) else { return nil }
        self.base = base
    }

    /// Whether `bytes` from `base` are all mapped: madvise(2) answers ENOMEM for a range with a
    /// hole, in one step under the kernel's lock (reading /proc/self/maps while other threads map
    /// and unmap can see a torn list).
    static func isReserved(_ base: UnsafeMutableRawPointer, bytes: Int) -> Bool {
        madvise(base, bytes, MADV_NORMAL) == 0
    }
}

extension GuestTask {
    /// The region of the task's memory while it runs, to be read from another thread (nil before
    /// its first slice, after it ended, or when its memory could move; see ``GuestMemoryRegion``).
    public var memoryRegion: GuestMemoryRegion? { self.region.withLockedValue { $0 } }
}

extension GuestInstance {
    /// Where its memory starts now (nil without memory).
    var memoryBase: UnsafeMutableRawPointer? { (try? self.withMutableMemory { $0.baseAddress }) ?? nil }
}

extension GuestInstance {
    /// The region of this instance's memory, when it stays put (see ``GuestMemoryRegion``).
    public var memoryRegion: GuestMemoryRegion? { self.memoryBase.flatMap(GuestMemoryRegion.init(base:)) }
}

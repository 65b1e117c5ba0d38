import CFerryLinux
import FerryGuest
import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// The target's side of post-copy: a guest's memory whose pages come after the guest resumed.
///
/// The memory is emptied and registered with userfaultfd's missing mode: a guest thread that
/// touches a page not filled yet waits in the kernel while ``nextFault(timeout:)`` tells a
/// handler which page it needs; ``fill(at:with:)`` installs a page (UFFDIO_COPY) and wakes it.
/// Pages pushed in the background are filled the same way, and a page that is already there is
/// never overwritten, so each page is installed once.
public final class MissingPages: @unchecked Sendable {
    // Sendable: the descriptor is the kernel's to order; fill and nextFault may run on two threads.
    public static let pageSize = WrittenPages.pageSize
    private let region: GuestMemoryRegion
    public let bytes: Int
    private let userfaultfd: Int32

    /// Empties the pages of `missing` (all of the first `bytes` when nil) and registers the span
    /// from the first of them to the last, so that a touch of an emptied page waits for it (a
    /// page there that stayed is read as it is); throws the kernel's reason when userfaultfd is
    /// not permitted here (`vm.unprivileged_userfaultfd`, `/dev/userfaultfd`).
    public init(_ region: GuestMemoryRegion, bytes: Int, missing: [Range<Int>]? = nil) throws {
        self.region = region
        self.bytes = (bytes + Self.pageSize - 1) / Self.pageSize * Self.pageSize
        // Instantiation wrote the module's data segments: drop them, so that every missing page
        // is the source's and none is filled twice.
        for run in missing ?? [0..<self.bytes] {
            guard run.lowerBound % Self.pageSize == 0, run.upperBound % Self.pageSize == 0, run.upperBound <= self.bytes
            else {
                throw ProcessError(
                    "missing pages at \(run) do not lie in whole pages of the guest's \(self.bytes) bytes"
                )
            }
            guard madvise(region.base + run.lowerBound, run.count, MADV_DONTNEED) == 0 else {
                throw Self.failure("empty the arriving guest's memory")
            }
        }
        // Registering costs in proportion to what it covers: only the span that lacks pages.
        let span =
            (missing ?? [0..<self.bytes]).reduce(nil as Range<Int>?) { span, run in
                span.map { min($0.lowerBound, run.lowerBound)..<max($0.upperBound, run.upperBound) } ?? run
            } ?? 0..<Self.pageSize
        var reason = [CChar](repeating: 0, count: 256)
        let fd = ferry_missing_pages_open(region.base + span.lowerBound, span.count, &reason, reason.count)
        guard fd >= 0 else {
            throw ProcessError(
                "post-copy needs userfaultfd, which this kernel refused: \(String(decoding: reason.prefix { $0 != 0 }.map(UInt8.init), as: UTF8.self))"
            )
        }
        self.userfaultfd = fd
    }

    deinit { close(self.userfaultfd) }

    /// Why post-copy cannot work here (nil when it can), found by trying on a page.
    public static let kernelRefusal: String? = WrittenPages.refusal(trying: ferry_missing_pages_open)

    /// Installs whole pages at byte `offset` and wakes whoever waits for them. Returns false when
    /// some of them were there already (those stay as they are: nothing is overwritten).
    @discardableResult
    public func fill(at offset: Int, with bytes: UnsafeRawBufferPointer) throws -> Bool {
        precondition(offset % Self.pageSize == 0 && bytes.count % Self.pageSize == 0, "whole pages")
        guard offset + bytes.count <= self.bytes else {
            throw ProcessError("a page at \(offset) lies past the guest's \(self.bytes) bytes of memory")
        }
        let filled = ferry_missing_pages_fill(
            self.userfaultfd,
            self.region.base + offset,
            bytes.baseAddress!,
            bytes.count
        )
        guard filled >= 0 else { throw Self.failure("install a page of the guest's memory") }
        return filled == 0
    }

    static func failure(_ what: String) -> ProcessError {
        ProcessError("cannot \(what): \(String(cString: strerror(errno)))")
    }

    /// The byte offset of the page a guest thread waits for, or nil when none did within
    /// `timeout`.
    public func nextFault(timeout: Duration) throws -> Int? {
        let milliseconds = Int32(
            clamping: timeout.components.seconds * 1000 + timeout.components.attoseconds / 1_000_000_000_000_000
        )
        let address = ferry_missing_page_next(self.userfaultfd, milliseconds)
        if address == -2 { return nil }
        guard address >= 0 else {
            throw Self.failure("read the guest's page faults")
        }
        let offset = Int(UInt(address) - UInt(bitPattern: self.region.base))
        return offset / Self.pageSize * Self.pageSize
    }
}

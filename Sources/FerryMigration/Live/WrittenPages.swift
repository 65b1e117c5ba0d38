import CFerryLinux
import FerryGuest
import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// The pages of a running guest's memory written since they were last collected, for pre-copy's
/// rounds.
///
/// The kernel tracks them where it can: userfaultfd's asynchronous write-protection marks a page
/// on its first write (no fault reaches Ferry), and PAGEMAP_SCAN reports the marked pages and
/// protects them again in one step (Linux 6.7). Elsewhere each page's CRC-32C is compared with
/// the last round's, which reads all of memory every round; ``method`` says which, and
/// ``kernelUnavailable`` why not the kernel.
public final class WrittenPages: @unchecked Sendable {
    // Sendable: used by the one thread that runs the move.
    public enum Method: String, Sendable {
        case kernel = "userfaultfd"
        case checksums
    }

    public static let pageSize = 4096
    public let method: Method
    /// Why the kernel does not track the pages (nil when it does).
    public let kernelUnavailable: String?
    private let region: GuestMemoryRegion
    private let userfaultfd: Int32
    private var checksums: [UInt32] = []
    private var collected = false

    /// Starts tracking `region`: until the first ``collect(upTo:)`` every page counts as written.
    public init(_ region: GuestMemoryRegion, kernel: Bool = true) {
        self.region = region
        var reason = [CChar](repeating: 0, count: 256)
        let fd =
            kernel
            ? ferry_written_pages_open(region.base, GuestMemoryRegion.reservedBytes, &reason, reason.count) : -1
        self.userfaultfd = fd
        self.method = fd >= 0 ? .kernel : .checksums
        self.kernelUnavailable =
            fd >= 0
            ? nil
            : kernel ? String(decoding: reason.prefix { $0 != 0 }.map(UInt8.init), as: UTF8.self) : "not asked for"
    }

    deinit {
        if self.userfaultfd >= 0 { close(self.userfaultfd) }
    }

    /// Why this kernel cannot track written pages (nil when it can), found by trying on a page.
    public static let kernelRefusal: String? = refusal(trying: ferry_written_pages_open)

    /// Why `open` fails on a fresh page of this process (nil when it works): what a userfaultfd
    /// mode needs, tried once.
    static func refusal(
        trying open: (UnsafeMutableRawPointer?, Int, UnsafeMutablePointer<CChar>?, Int) -> Int32
    ) -> String? {
        guard let page = mmap(nil, pageSize, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0),
            page != MAP_FAILED
        else { return "cannot map a page to try userfaultfd on" }
        defer { munmap(page, pageSize) }
        var reason = [CChar](repeating: 0, count: 256)
        let fd = open(page, pageSize, &reason, reason.count)
        guard fd >= 0 else { return String(decoding: reason.prefix { $0 != 0 }.map(UInt8.init), as: UTF8.self) }
        close(fd)
        return nil
    }

    /// The runs of pages (byte offsets, page-aligned) in the first `bytes` of memory written since
    /// the last call; every page the first time. `bytes` is the memory's size now: pages it grew
    /// by since count as written.
    public func collect(upTo bytes: Int) throws -> [Range<Int>] {
        let end = bytes / Self.pageSize * Self.pageSize
        switch self.method {
        case .kernel: return try self.scan(upTo: end)
        case .checksums: return self.compare(upTo: end)
        }
    }

    private func scan(upTo end: Int) throws -> [Range<Int>] {
        var runs: [Range<Int>] = []
        var ranges = [UInt64](repeating: 0, count: 512)
        var from = self.region.base
        let stop = self.region.base + end
        while from < stop {
            var walkEnd: UInt64 = 0
            let found = ferry_written_pages_scan(from, stop, &ranges, 256, &walkEnd)
            guard found >= 0 else {
                throw ProcessError("cannot scan the guest's written pages: \(String(cString: strerror(errno)))")
            }
            let base = UInt64(UInt(bitPattern: self.region.base))
            for index in 0..<Int(found) {
                let run = Int(ranges[2 * index] - base)..<Int(ranges[2 * index + 1] - base)
                if let last = runs.last, last.upperBound == run.lowerBound {
                    runs[runs.count - 1] = last.lowerBound..<run.upperBound
                } else {
                    runs.append(run)
                }
            }
            guard let next = UnsafeMutableRawPointer(bitPattern: UInt(walkEnd)), next > from else { break }
            from = next
        }
        return runs
    }

    private func compare(upTo end: Int) -> [Range<Int>] {
        let pages = end / Self.pageSize
        var runs: [Range<Int>] = []
        for page in 0..<pages {
            let crc = ferry_crc32c(0, self.region.base + page * Self.pageSize, Self.pageSize)
            let changed = page >= self.checksums.count || self.checksums[page] != crc || !self.collected
            if page < self.checksums.count { self.checksums[page] = crc } else { self.checksums.append(crc) }
            guard changed else { continue }
            let offset = page * Self.pageSize
            if let last = runs.last, last.upperBound == offset {
                runs[runs.count - 1] = last.lowerBound..<(offset + Self.pageSize)
            } else {
                runs.append(offset..<(offset + Self.pageSize))
            }
        }
        self.collected = true
        return runs
    }
}

import FerryGuest
import FerryMigration
import Foundation
import Testing
import WasmKit

#if canImport(Glibc)
import Glibc
#endif

/// The kernel's part in live migration: the pages a guest writes while it runs (pre-copy), and
/// pages that arrive after it resumed (post-copy), on a real guest's memory.
@Suite struct GuestPagesTests {
    static func guest() throws -> GuestInstance {
        let folder = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("Guests")
        return try GuestInstance(module: GuestModule(path: folder.appendingPathComponent("sha256.plain.wasm").path))
    }

    @Test(arguments: [true, false])
    func thePagesWrittenSinceTheLastRoundAreFound(kernel: Bool) throws {
        if kernel, let refusal = WrittenPages.kernelRefusal {
            print("skipped: the kernel does not track written pages here (\(refusal)); the checksum case runs")
            return
        }
        let instance = try Self.guest()
        let region = try #require(instance.memoryRegion, "WasmKit keeps guest memory at one base on Linux")
        let pages = WrittenPages(region, kernel: kernel)
        #expect(pages.method == (kernel ? .kernel : .checksums))
        let bytes = instance.memoryBytes
        #expect(try pages.collect(upTo: bytes) == [0..<bytes], "every page, the first round")
        #expect(try pages.collect(upTo: bytes).isEmpty, "nothing written since")

        let page = WrittenPages.pageSize
        region.base.storeBytes(of: 0xA5, toByteOffset: 5 * page + 17, as: UInt8.self)
        region.base.storeBytes(of: 0x5A, toByteOffset: 9 * page, as: UInt8.self)
        region.base.storeBytes(of: 0x5A, toByteOffset: 10 * page + page - 1, as: UInt8.self)
        #expect(try pages.collect(upTo: bytes) == [(5 * page)..<(6 * page), (9 * page)..<(11 * page)])

        // The guest's own writes: its stack and its digest.
        let digest = try instance.invoke("sha256_generated", [.i32(4096), .i32(0)])
        let written = try pages.collect(upTo: bytes)
        let at = Int(digest[0].i32)
        #expect(written.contains { $0.contains(at) && $0.contains(at + 31) }, "the digest's page: \(written)")
        #expect(try pages.collect(upTo: bytes).isEmpty)
    }

    @Test(.enabled(if: MissingPages.kernelRefusal == nil, "post-copy needs userfaultfd's missing mode"))
    func pagesArriveOnDemandAndEachIsInstalledOnce() throws {
        let source = try Self.guest()
        let result = try source.invoke("sha256_generated", [.i32(4096), .i32(0)])
        let digest = try source.readMemory(offset: Int(result[0].i32), count: 32)
        let memory = try source.readMemory(offset: 0, count: source.memoryBytes)

        let target = try Self.guest()
        let region = try #require(target.memoryRegion)
        let missing = try MissingPages(region, bytes: memory.count)
        // The handler: each page a thread waits for, from the source's copy.
        let served = Served()
        let handler = Thread {
            while !served.stopping {
                guard let offset = try? missing.nextFault(timeout: .milliseconds(20)) else { continue }
                // Counted before it is filled: the filling wakes the reader.
                served.add(offset)
                memory.withUnsafeBytes { bytes in
                    let page = UnsafeRawBufferPointer(rebasing: bytes[offset..<(offset + MissingPages.pageSize)])
                    _ = try? missing.fill(at: offset, with: page)
                }
            }
        }
        handler.start()
        defer { served.stop() }

        // Read before any page came: the read waits for its page, which comes from the source.
        #expect(try target.readMemory(offset: Int(result[0].i32), count: 32) == digest)
        #expect(served.count >= 1, "the read waited for its page")
        // The rest is pushed, as the source does in the background: pages already there stay.
        var pushed = 0
        try memory.withUnsafeBytes { bytes in
            for offset in stride(from: 0, to: bytes.count, by: 16 * MissingPages.pageSize) {
                let end = min(offset + 16 * MissingPages.pageSize, bytes.count)
                if try missing.fill(at: offset, with: UnsafeRawBufferPointer(rebasing: bytes[offset..<end])) {
                    pushed += 1
                }
            }
        }
        #expect(pushed > 0, "pages nobody waited for come by the push")
        #expect(try target.readMemory(offset: 0, count: memory.count) == memory, "every page is the source's")
        // And the guest runs on in it.
        let again = try target.invoke("sha256_generated", [.i32(4096), .i32(0)])
        #expect(try target.readMemory(offset: Int(again[0].i32), count: 32) == digest)
    }

    final class Served: @unchecked Sendable {
        // Sendable: guarded by `lock`.
        private let lock = NSLock()
        private var pages: Set<Int> = []
        private var stopped = false
        var stopping: Bool { self.lock.withLock { self.stopped } }
        var count: Int { self.lock.withLock { self.pages.count } }
        func add(_ page: Int) { self.lock.withLock { _ = self.pages.insert(page) } }
        func stop() { self.lock.withLock { self.stopped = true } }
    }
}

import FerryGuest
import FerryMigration
import Foundation

/// `ferry-bench pages --guests DIR [--mib 64] [--seconds 2] [--every-ms 50]`: what tracking a
/// running guest's written pages costs it, in process. The writer guest dirties pages as fast as
/// it can for SECONDS, untracked, then while its pages are collected every EVERY milliseconds by
/// the kernel (userfaultfd and PAGEMAP_SCAN) and by per-page checksums. One `key=value` a line:
/// `pages_per_s_<way>`, `collect_ms_<way>` (the median collection), `method_<way>`.
enum PagesBenchmark {
    static func run(_ arguments: [String]) throws {
        var folder = "Guests"
        var mib = 64
        var seconds = 2
        var every = 50
        try parseFlags(arguments) { flag, value in
            switch flag {
            case "--guests": folder = value
            case "--mib": mib = Int(value) ?? mib
            case "--seconds": seconds = Int(value) ?? seconds
            case "--every-ms": every = Int(value) ?? every
            default: return false
            }
            return true
        }
        let module = try GuestModule(path: "\(folder)/writer.wasm")
        for way in ["untracked", "kernel", "checksums"] {
            let instance = try GuestInstance(
                module: module,
                limits: GuestLimits(maxMemoryBytes: (mib + 8) << 20),
                environment: GuestEnvironment(arguments: [String(mib), "0", String(seconds)])
            )
            let done = NSCondition()
            nonisolated(unsafe) var finished = false
            // Run on a thread of its own; this thread only reads its memory's size and pages.
            nonisolated(unsafe) let running = instance
            let runner = Thread {
                do {
                    _ = try running.invoke("_start")
                } catch let exit as GuestExit where exit.code == 0 {
                    // It ran its time.
                } catch {
                    FileHandle.standardError.write(Data("writer: \(error)\n".utf8))
                }
                done.lock()
                finished = true
                done.signal()
                done.unlock()
            }
            runner.start()
            var collections: [Double] = []
            var method = "none"
            if way != "untracked" {
                // Once its memory has grown: then its pages are the ones it keeps writing.
                while instance.memoryBytes < mib << 20 {
                    guard !done.withLock({ finished }) else { throw Failure("the writer guest stopped before it grew") }
                    usleep(1000)
                }
                let region = try Self.require(instance.memoryRegion, "the guest's memory has no stable base")
                let pages = WrittenPages(region, kernel: way == "kernel")
                method = pages.method.rawValue
                while !done.withLock({ finished }) {
                    let started = ContinuousClock.now
                    _ = try pages.collect(upTo: instance.memoryBytes)
                    collections.append((ContinuousClock.now - started).milliseconds)
                    usleep(useconds_t(every * 1000))
                }
            }
            done.lock()
            while !finished { done.wait() }
            done.unlock()
            let written = try instance.invoke("pages_written")[0].i64
            guard written > 0 else { throw Failure("the writer guest wrote nothing (\(way))") }
            print("pages_per_s_\(way)=\(Double(written) / Double(seconds))")
            print("method_\(way)=\(method)")
            if !collections.isEmpty {
                print("collect_ms_\(way)=\(String(format: "%.3f", collections.sorted()[collections.count / 2]))")
            }
        }
    }

    static func require<T>(_ value: T?, _ message: String) throws -> T {
        guard let value else { throw Failure(message) }
        return value
    }
}

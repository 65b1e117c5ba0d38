import FerryGuest
import FerryPosix
import Foundation
import WasmKit

/// `ferry-bench guest --guests DIR [--engine wasmkit|wasmtime] [--mib N] [--repeats N] [--instantiations N] [--only instantiate]`:
/// FerryGuest's costs on one engine, one `key=value` per line, for Benchmarks/guest.sh to set
/// beside its anchors.
///
/// - `instantiate_us`: a fresh instance of an already validated module (median);
/// - `*_mib_per_s`: SHA-256 over generated data in the same guest built plain and with
///   Asyncify, each unmetered and metered (best of N);
/// - `checkpoint_ms_M` / `restore_ms_M`: capture and serialize a guest holding M MiB, and
///   decode, instantiate, copy back and rewind it until it runs again (median of 3);
/// - `switch_us`: one user-level switch under ``GuestScheduler`` (unwind, requeue, rewind).
enum GuestBenchmark {
    static func run(_ arguments: [String]) throws {
        var folder = "Guests"
        var mib = 16
        var repeats = 3
        var instantiations = 500
        var only: String?
        var engine = GuestEngine.wasmkit
        try parseFlags(arguments) { flag, value in
            switch flag {
            case "--engine": engine = try GuestEngine.named(value)
            case "--guests": folder = value
            case "--mib": mib = Int(value) ?? mib
            case "--repeats": repeats = Int(value) ?? repeats
            case "--instantiations": instantiations = Int(value) ?? instantiations
            case "--only": only = value
            default: return false
            }
            return true
        }
        GuestEngine.current = engine  // for the checkpoints and the scheduler below
        let plain = try GuestModule(path: "\(folder)/sha256.plain.wasm")
        let asyncify = try GuestModule(path: "\(folder)/sha256.wasm")

        _ = try GuestInstance(module: plain, engine: engine)  // compiled once, as a node's cache would hold it
        var samples: [Duration] = []
        for _ in 0..<instantiations {
            let start = ContinuousClock.now
            _ = try GuestInstance(module: plain, engine: engine)
            samples.append(ContinuousClock.now - start)
        }
        print("instantiate_us=\(format(median(samples).inSeconds * 1e6))")
        if only == "instantiate" { return }

        let metered = GuestLimits(fuel: 1 << 62)
        var digests = Set<String>()
        let rows: [(String, GuestModule, GuestLimits)] = [
            ("plain", plain, GuestLimits()), ("fuel", plain, metered), ("asyncify", asyncify, GuestLimits()),
            ("fuel_asyncify", asyncify, metered), ("movable", try plain.movable(), GuestLimits()),
        ]
        for (name, module, limits) in rows {
            var best = 0.0
            for _ in 0..<repeats {
                let instance = try GuestInstance(module: module, limits: limits, engine: engine)
                let start = ContinuousClock.now
                let address = try instance.invoke("sha256_generated", [.i32(UInt32(mib << 20)), .i32(0)])[0].i32
                best = max(best, Double(mib) / (ContinuousClock.now - start).inSeconds)
                digests.insert(hex(try instance.readMemory(offset: Int(address), count: 32)))
            }
            print("\(name)_mib_per_s=\(format(best))")
        }
        guard digests.count == 1, let digest = digests.first else { throw Failure("the builds disagree: \(digests)") }
        print("digest=\(digest)")

        for size in [1, 16, 64] {
            var checkpoints: [Duration] = []
            var restores: [Duration] = []
            var bytes = 0
            for _ in 0..<3 {
                let (checkpoint, restore, count) = try self.checkpointAndRestore(asyncify, mib: size)
                checkpoints.append(checkpoint)
                restores.append(restore)
                bytes = count
            }
            print("checkpoint_ms_\(size)=\(format(median(checkpoints).inSeconds * 1e3))")
            print("restore_ms_\(size)=\(format(median(restores).inSeconds * 1e3))")
            print("snapshot_bytes_\(size)=\(bytes)")
        }

        print("switch_us=\(format(try self.switchCost(folder: folder)))")
    }

    /// Grows a guest to `mib` MiB, checkpoints it after its first block, and restores it.
    static func checkpointAndRestore(_ module: GuestModule, mib: Int) throws -> (Duration, Duration, Int) {
        let limits = GuestLimits(maxMemoryBytes: (mib + 2) << 20)
        let instance = try GuestInstance(module: module, limits: limits)
        guard try instance.invoke("reserve", [.i32(UInt32(mib))])[0].i32 != UInt32.max else {
            throw Failure("the guest could not grow to \(mib) MiB")
        }
        let arguments: [Value] = [.i32(1 << 16), .i32(1)]
        let started = ContinuousClock.now
        guard
            case .checkpointed(let snapshot) = try instance.call("sha256_generated", arguments, checkpoint: { $0 == 1 })
        else { throw Failure("no checkpoint was taken") }
        let bytes = snapshot.serialized()
        let checkpoint = ContinuousClock.now - started

        // Restored when the guest reaches its next checkpoint call, one block after the rewind.
        let restoring = ContinuousClock.now
        var running: ContinuousClock.Instant?
        let decoded = try GuestSnapshot(serialized: bytes)
        let (_, outcome) = try GuestInstance.resume(decoded, module: module, limits: limits) { _ in
            if running == nil { running = ContinuousClock.now }
            return false
        }
        guard case .finished = outcome, let running else { throw Failure("the restored guest did not run on") }
        return (checkpoint, running - restoring, bytes.count)
    }

    /// Guests that yield at every round with a zero time slice: every yield is a switch.
    static func switchCost(folder: String) throws -> Double {
        let worker = try GuestModule(path: "\(folder)/worker.wasm")
        let scheduler = GuestScheduler(kernelThreads: 1, timeSlice: .zero)
        defer { scheduler.shutdown() }
        let done = DispatchSemaphore(value: 0)
        let guests = 20
        let rounds = 2000
        let start = ContinuousClock.now
        let tasks = (0..<guests).map { _ in
            scheduler.spawn(worker, export: "work", arguments: [.i32(UInt32(rounds)), .i32(1)])
        }
        for task in tasks {
            Task {
                _ = try? await task.value()
                done.signal()
            }
        }
        for _ in tasks { done.wait() }
        let elapsed = ContinuousClock.now - start
        return elapsed.inSeconds * 1e6 / Double(scheduler.statistics.preemptions)
    }

    static func median(_ samples: [Duration]) -> Duration { samples.sorted()[samples.count / 2] }
    static func format(_ value: Double) -> String { String(format: "%.1f", value) }
    static func hex(_ bytes: [UInt8]) -> String { bytes.map { String(format: "%02x", $0) }.joined() }
}

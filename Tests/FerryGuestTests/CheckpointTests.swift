import FerryGuest
import FerryPosix
import FerryTestSupport
import Foundation
import Testing
import WasmKit

extension GuestRuns {
    /// The execution segment: capture a running guest at a checkpoint and continue it elsewhere.
    @Suite struct CheckpointTests {
        /// 8 MiB in CI's second pass (about 3 minutes); `swift test`'s debug build runs WasmKit's
        /// interpreter about 150 times slower than an optimized one, so by default 256 KiB.
        static let size =
            ProcessInfo.processInfo.environment["FERRY_CHECKPOINT_TEST_BYTES"].flatMap(Int.init) ?? 256 << 10

        /// The bytes the sha256 guest hashes: byte i is (i * 31 + (i >> 11)) & 255.
        static func data() -> [UInt8] {
            (0..<Self.size).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ ($0 >> 11)) }
        }

        static func digest(_ instance: GuestInstance, _ results: [Value]) throws -> String {
            let bytes = try instance.readMemory(offset: Int(results[0].i32), count: 32)
            return bytes.map { String(format: "%02x", $0) }.joined()
        }

        static func sha256sum(_ bytes: [UInt8]) throws -> String {
            let temporary = try TemporaryDirectory()
            defer { withExtendedLifetime(temporary) {} }  // removed at the end of the test
            let file = URL(fileURLWithPath: temporary.path + "/bytes")
            try Data(bytes).write(to: file)
            return String(try ChildProcess.run(["/usr/bin/sha256sum", file.path]).output.prefix(64))
        }

        @Test(arguments: TestEngines.available)
        func aGuestCheckpointedAtEveryChanceAndRestoredEachTimeFinishesWithTheSameDigest(engine: GuestEngine) throws {
            let module = try Guests.load("sha256")
            let every = max(Self.size / 64 / 128, 1)  // about 128 checkpoints, whatever the size
            let arguments: [Value] = [.i32(UInt32(Self.size)), .i32(UInt32(every))]

            let plain = try GuestInstance(module: module, engine: engine)
            let expected = try Self.digest(plain, try plain.invoke("sha256_generated", arguments))
            #expect(expected == (try Self.sha256sum(Self.data())))

            var instance = try GuestInstance(module: module, engine: engine)
            var outcome = try instance.call("sha256_generated", arguments) { _ in true }
            var restores = 0
            while case .checkpointed(let snapshot) = outcome {
                // Through bytes, as it would travel, into a fresh instance each time.
                let copy = try GuestSnapshot(serialized: snapshot.serialized())
                #expect(copy == snapshot)
                (instance, outcome) = try GuestInstance.resume(copy, module: module, engine: engine) { _ in true }
                restores += 1
            }
            guard case .finished(let results) = outcome else { return }
            #expect(restores == Self.size / 64 / every)
            #expect(try Self.digest(instance, results) == expected)
        }

        @Test(arguments: TestEngines.available) func aGuestThatGrewItsMemoryIsRestoredWithAllOfIt(
            engine: GuestEngine
        ) throws {
            let module = try Guests.load("sha256")
            let instance = try GuestInstance(module: module, engine: engine)
            let pages = try instance.invoke("reserve", [.i32(3)])[0].i32
            #expect(pages == 48, "3 MiB in 64 KiB pages")
            let arguments: [Value] = [.i32(4096), .i32(8)]
            guard
                case .checkpointed(let snapshot) = try instance.call(
                    "sha256_generated",
                    arguments,
                    checkpoint: { $0 == 4 }
                )
            else {
                Issue.record("no checkpoint was taken")
                return
            }
            #expect(snapshot.memory.count == 3 << 20)
            // A fresh instance starts smaller; the restore grows it to the snapshot's size.
            let (restored, outcome) = try GuestInstance.resume(snapshot, module: module, engine: engine)
            guard case .finished(let results) = outcome else { return }
            #expect(try restored.readMemory(offset: 2 << 20, count: 1) == [32], "a byte reserve wrote in page 32")
            let plain = try GuestInstance(module: module, engine: engine)
            #expect(
                try Self.digest(restored, results)
                    == (try Self.digest(plain, try plain.invoke("sha256_generated", arguments)))
            )
        }

        @Test(arguments: TestEngines.available) func aDamagedSnapshotIsRefused(engine: GuestEngine) throws {
            let module = try Guests.load("sha256")
            let outcome = try GuestInstance(module: module, engine: engine).call(
                "sha256_generated",
                [.i32(64 << 10), .i32(100)]
            ) {
                $0 == 3
            }
            guard case .checkpointed(let snapshot) = outcome else {
                Issue.record("no checkpoint was taken")
                return
            }
            let bytes = snapshot.serialized()
            var flipped = bytes
            flipped[bytes.count / 2] ^= 0x40
            #expect(throws: GuestSnapshotError.checksumMismatch) { try GuestSnapshot(serialized: flipped) }
            #expect(throws: GuestSnapshotError.truncated(have: bytes.count - 100)) {
                try GuestSnapshot(serialized: Array(bytes.dropLast(100)))
            }
            #expect(throws: GuestSnapshotError.notASnapshot) { try GuestSnapshot(serialized: Array("hello".utf8)) }
            #expect(throws: GuestSnapshotError.wrongModule) {
                try GuestInstance.resume(snapshot, module: try Guests.load("counter"), engine: engine)
            }
        }

        /// The state is the module's memory and globals, whichever engine ran it: a snapshot taken on
        /// one engine goes on on the other.
        @Test(arguments: [(GuestEngine.wasmkit, GuestEngine.wasmtime), (.wasmtime, .wasmkit)])
        func aSnapshotTakenOnOneEngineFinishesOnTheOther(from: GuestEngine, to: GuestEngine) throws {
            guard TestEngines.available.contains(.wasmtime) else { return }
            let module = try Guests.load("sha256")
            let arguments: [Value] = [.i32(64 << 10), .i32(16)]
            let plain = try GuestInstance(module: module, engine: from)
            let expected = try Self.digest(plain, try plain.invoke("sha256_generated", arguments))
            guard
                case .checkpointed(let snapshot) = try GuestInstance(module: module, engine: from).call(
                    "sha256_generated",
                    arguments,
                    checkpoint: { $0 == 10 }
                )
            else {
                Issue.record("no checkpoint was taken on \(from)")
                return
            }
            let copy = try GuestSnapshot(serialized: snapshot.serialized())
            let (restored, outcome) = try GuestInstance.resume(copy, module: module, engine: to)
            guard case .finished(let results) = outcome else {
                Issue.record("the call did not finish on \(to)")
                return
            }
            #expect(restored.engine == to)
            #expect(try Self.digest(restored, results) == expected)
        }

        @Test func aGuestWithoutAsyncifyCannotBeCheckpointed() throws {
            let plain = try Guests.load("sha256.plain")
            #expect(plain.info.canBeCheckpointed == false)
            #expect(try Guests.load("sha256").info.canBeCheckpointed)
        }
    }
}

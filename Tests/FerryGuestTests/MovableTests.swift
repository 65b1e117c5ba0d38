import FerryGuest
import FerryTestSupport
import Foundation
import NIOConcurrencyHelpers
import Testing
import WasmKit

extension GuestRuns {
    /// Strong mobility of any module: a plain module, as compiled, made movable by Ferry, captured
    /// while it runs and continued elsewhere.
    @Suite struct MovableTests {
        /// Holds of one task, handed from the scheduler's thread to the test.
        final class Holds: Sendable {
            private let held = NIOLockedValueBox<[(GuestTask, GuestTask.Hold)]>([])
            private let condition = NSCondition()

            var handler: @Sendable (GuestTask, GuestTask.Hold) -> Void {
                { task, hold in
                    self.condition.lock()
                    self.held.withLockedValue { $0.append((task, hold)) }
                    self.condition.broadcast()
                    self.condition.unlock()
                }
            }

            /// The next hold, waiting up to `seconds` for it.
            func next(seconds: Double = 60) -> (GuestTask, GuestTask.Hold)? {
                let end = Date(timeIntervalSinceNow: seconds)
                self.condition.lock()
                defer { self.condition.unlock() }
                while self.held.withLockedValue({ $0.isEmpty }) {
                    guard self.condition.wait(until: end) else { return nil }
                }
                return self.held.withLockedValue { $0.removeFirst() }
            }
        }

        @Test(arguments: TestEngines.available) func aPlainModuleMadeMovableComputesWhatItComputedBefore(
            engine: GuestEngine
        ) throws {
            let plain = try Guests.load("sha256.plain")
            #expect(!plain.canBeCaptured)
            let movable = try plain.movable()
            #expect(movable.isMovable && movable.canBeCaptured)
            #expect(movable.sourceDigest == plain.digest && movable.digest != plain.digest)
            #expect(try plain.movable().digest == movable.digest)
            let arguments: [Value] = [.i32(64 << 10), .i32(0)]
            let before = try GuestInstance(module: plain, engine: engine)
            let after = try GuestInstance(module: movable, engine: engine)
            let expected = try before.readMemory(
                offset: Int(try before.invoke("sha256_generated", arguments)[0].i32),
                count: 32
            )
            let got = try after.readMemory(
                offset: Int(try after.invoke("sha256_generated", arguments)[0].i32),
                count: 32
            )
            #expect(got == expected)
        }

        @Test func aRunningPlainGuestIsCapturedAndFinishesElsewhereWithTheSameResult() async throws {
            let module = try Guests.load("sha256.plain").movable()
            let arguments: [Value] = [.i32(UInt32(CheckpointTests.size)), .i32(0)]
            let reference = try GuestInstance(module: module)
            let expected = try reference.readMemory(
                offset: Int(try reference.invoke("sha256_generated", arguments)[0].i32),
                count: 32
            )

            let here = GuestScheduler(kernelThreads: 1)
            let there = GuestScheduler(kernelThreads: 1)
            defer {
                here.shutdown()
                there.shutdown()
            }
            let holds = Holds()
            var task = here.spawn(
                module,
                export: "sha256_generated",
                arguments: arguments,
                resultBytes: 32,
                onHold: holds.handler
            )
            var scheduler = here
            var moves = 0
            // Capture it three times, each time continuing on the other scheduler from bytes.
            while moves < 3 {
                scheduler.requestCapture(task)
                guard let (held, hold) = holds.next() else {
                    Issue.record("the guest was not held")
                    return
                }
                #expect(hold == .capture)
                let snapshot = try GuestSnapshot(serialized: try held.capture(epoch: UInt64(moves + 1)).serialized())
                #expect(snapshot.epoch == UInt64(moves + 1))
                scheduler.release(held, with: .failure(CancellationError()))
                scheduler = scheduler === here ? there : here
                task = try scheduler.adopt(
                    snapshot,
                    module: module,
                    continuation: .whereItStopped,
                    resultBytes: 32,
                    onHold: holds.handler
                )
                moves += 1
            }
            _ = try await task.value()
            #expect(task.resultMemory == expected)
        }

        @Test func aLoopThatNeverCallsTheHostIsCaptured() async throws {
            let module = try Guests.load("spin").movable()
            let scheduler = GuestScheduler(kernelThreads: 1)
            defer { scheduler.shutdown() }
            let holds = Holds()
            let task = scheduler.spawn(module, export: "spin", onHold: holds.handler)
            scheduler.requestCapture(task)
            let held = try #require(holds.next())
            #expect(held.1 == .capture)
            let snapshot = try held.0.capture(epoch: 1)
            #expect(snapshot.export == "spin")
            scheduler.release(held.0, with: .failure(CancellationError()))
            await #expect(throws: CancellationError.self) { try await task.value() }
        }

        @Test func modulesAsyncifyCannotUnwindAreRefusedWithTheReason() throws {
            let module = try GuestModule(
                bytes: Array(
                    """
                    (module
                      (func $f (param i32) (result i32) local.get 0 return_call $f))
                    """.utf8
                )
            )
            #expect {
                try module.movable()
            } throws: { error in
                "\(error)".contains("tail calls")
            }
        }
    }
}

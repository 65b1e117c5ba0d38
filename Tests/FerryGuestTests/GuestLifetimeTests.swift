import Foundation
import Testing
import WasmKit

@testable import FerryGuest

/// A guest that ended, moved away or was killed gives its memory back: a node hosts processes
/// for as long as it runs, and each one's store holds a 4 GiB reservation.
@Suite struct GuestLifetimeTests {
    @Test(arguments: [false, true])
    func aGuestsStoreIsFreedWithItsInstance(movable: Bool) throws {
        // The host functions in the store's arena hold the suspension state: it outlives the
        // instance exactly when the arena, with the guest's memory, does.
        weak var suspension: SuspendState?
        do {
            let plain = try Guests.load("sha256.plain")
            let instance = try GuestInstance(module: movable ? try plain.movable() : plain)
            suspension = instance.suspension
            _ = try instance.invoke("sha256_generated", [.i32(64), .i32(0)])
        }
        #expect(suspension == nil, "the store's arena (and the guest's memory) outlived its instance")
    }

    @Test func aTaskThatEndedIsNotKeptByTheSchedulersQueue() async throws {
        let scheduler = GuestScheduler()
        defer { scheduler.shutdown() }
        weak var ended: GuestTask?
        do {
            let task = scheduler.spawn(
                try Guests.load("sha256.plain").movable(),
                export: "sha256_generated",
                arguments: [.i32(64), .i32(0)]
            )
            ended = task
            _ = try await task.value()
        }
        // The kernel thread lets go of it right after it finishes the task.
        for _ in 0..<100 where ended != nil { try await Task.sleep(for: .milliseconds(10)) }
        #expect(ended == nil, "the scheduler kept a task that ended")
    }
}

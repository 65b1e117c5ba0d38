import FerryGuest
import FerryTestSupport
import Foundation
import Testing
import WasmKit

extension GuestRuns {
    /// Guests as user-level threads over a few kernel threads.
    @Suite struct SchedulerTests {
        @Test(arguments: TestEngines.available)
        func aThousandGuestsOnTwoKernelThreadsFinishWhileOneIsBlockedInAHostCall(
            engine: GuestEngine
        ) async throws {
            let worker = try Guests.load("worker")
            // Rounds that outlast a slice on either engine: compiled code runs 100 steps in well
            // under the 100 µs slice, and would finish without ever being switched out.
            let arguments: [Value] = [.i32(3), .i32(engine == .wasmkit ? 100 : 100_000)]
            let expected = try GuestInstance(module: worker, engine: engine).invoke("work", arguments)
            let scheduler = GuestScheduler(kernelThreads: 2, timeSlice: .microseconds(100), engine: engine)
            defer { scheduler.shutdown() }

            let blocked = scheduler.spawn(worker, export: "wait_message")
            let workers = (0..<999).map { _ in scheduler.spawn(worker, export: "work", arguments: arguments) }
            for task in workers { #expect(try await task.value() == expected) }

            #expect(!blocked.isFinished, "it waits for a message that has not been sent")
            let counts = scheduler.statistics
            #expect(counts.finished == 999)
            #expect(counts.parks >= 1, "the blocked guest was parked, holding no kernel thread")
            #expect(counts.preemptions > 0, "slices ended at yields and other guests ran")

            blocked.mailbox.post([7, 8, 9])
            #expect(try await blocked.value() == [.i32(3007)], "woken by the message, it resumes inside the host call")
        }

        @Test(arguments: TestEngines.available) func aRunawayGuestIsStoppedWhileTheOthersFinish(
            engine: GuestEngine
        ) async throws {
            let scheduler = GuestScheduler(kernelThreads: 2, engine: engine)
            defer { scheduler.shutdown() }
            let runaway = scheduler.spawn(
                try Guests.load("spin"),
                export: "spin_yielding",
                limits: GuestLimits(fuel: 2_000_000)
            )
            let worker = try Guests.load("worker")
            let arguments: [Value] = [.i32(2), .i32(50)]
            let expected = try GuestInstance(module: worker, engine: engine).invoke("work", arguments)
            let others = (0..<20).map { _ in scheduler.spawn(worker, export: "work", arguments: arguments) }
            for task in others { #expect(try await task.value() == expected, "each of the others finished its work") }
            await #expect(throws: GuestStop.outOfFuel(budget: 2_000_000)) { try await runaway.value() }
        }

        @Test func guestThreadsRunBelowTheNodesOwnSoSpinningGuestsCannotStarveIt() async throws {
            let scheduler = GuestScheduler(kernelThreads: 2)
            defer { scheduler.shutdown() }
            // Field 19 of /proc/self/task/TID/stat is the thread's nice value.
            func niceOfGuestThreads() -> [Int] {
                ((try? KernelTask.all()) ?? []).compactMap { task in
                    guard task.name.hasPrefix("ferry-guest-"), !task.name.hasPrefix("ferry-guest-tic"),
                        let stat = try? task.file("stat"),
                        let close = stat.lastIndex(of: ")")
                    else { return nil }
                    // Fields after the name, which may hold spaces: state is field 3, nice 19.
                    let fields = stat[stat.index(after: close)...].split(separator: " ")
                    return fields.count > 16 ? Int(fields[16]) : nil
                }
            }
            let deadline = ContinuousClock.now + .seconds(30)
            var nice = niceOfGuestThreads()
            // A thread that a guest thread starts (the Swift runtime's own, say) inherits its
            // name and may set its own priority: count the scheduler's two, not all so named.
            let guestNice = Int(GuestScheduler.guestNice)
            while nice.filter({ $0 == guestNice }).count < 2, ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(10))
                nice = niceOfGuestThreads()
            }
            #expect(guestNice > 0 && nice.filter { $0 == guestNice }.count >= 2, "\(nice)")
            #expect(getpriority(__priority_which_t(PRIO_PROCESS.rawValue), 0) == 0, "the process itself keeps 0")
        }

        @Test(arguments: TestEngines.available) func shuttingDownFailsTheGuestsStillWaiting(
            engine: GuestEngine
        ) async throws {
            let scheduler = GuestScheduler(kernelThreads: 1, engine: engine)
            let mailbox = GuestMailbox()
            let waiting = scheduler.spawn(
                try Guests.load("worker"),
                export: "wait_message",
                environment: GuestEnvironment(mailbox: mailbox)
            )
            // Parked once the slice ends; a message to a guest that is gone changes nothing.
            while scheduler.statistics.parks == 0 { await Task.yield() }
            scheduler.shutdown()
            mailbox.post([1])
            await #expect(throws: GuestError.schedulerStopped) { try await waiting.value() }
        }
    }
}

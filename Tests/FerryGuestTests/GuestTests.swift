import FerryGuest
import FerryTestSupport
import Foundation
import NIOConcurrencyHelpers
import Testing
import WasmKit

/// The example guests under `Guests/`, built by `Guests/build.sh` and committed.
/// The suites that run guests: one test at a time, each on a thread of its own. A guest runs
/// synchronously and for up to seconds; several at once, on the cooperative pool's two threads
/// (or beside it), starved the in-process servers of other suites until their leases ran out.
@Suite(.serialized, .onThreadsOfTheirOwn) enum GuestRuns {}

/// The engines the guest suites run on: WasmKit always; Wasmtime where its library is installed
/// (`.ci/run` installs it).
enum TestEngines {
    static let available: [GuestEngine] = GuestEngine.allCases.filter { engine in
        guard case .failure(let reason) = engine.availability else { return true }
        print("skipped on \(engine): \(reason)")
        return false
    }
}

enum Guests {
    static let folder = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("Guests")

    static func load(_ name: String) throws -> GuestModule {
        try GuestModule(path: Self.folder.appendingPathComponent("\(name).wasm").path)
    }
}

@Suite struct GuestModuleTests {
    @Test func resultsGoAsLowercaseHexAndComeBack() {
        let bytes: [UInt8] = [0x00, 0x0f, 0x10, 0xa5, 0xff] + (0...255).map(UInt8.init)
        let hex = GuestValues.hex(bytes)
        #expect(hex.hasPrefix("000f10a5ff000102"))
        #expect(hex.count == bytes.count * 2 && hex == hex.lowercased())
        #expect(GuestValues.bytes(hex: hex) == bytes)
        #expect(GuestValues.hex([]).isEmpty)
    }

    @Test func binaryAndTextModulesLoadAndRun() throws {
        let text = GuestModule.self
        let module = try text.init(
            bytes: Array(
                """
                (module
                  (func (export "add") (param i32 i32) (result i32) local.get 0 local.get 1 i32.add))
                """.utf8
            )
        )
        #expect(try GuestInstance(module: module).invoke("add", [.i32(2), .i32(40)]) == [.i32(42)])

        let counter = try Guests.load("counter")
        let instance = try GuestInstance(module: counter)
        #expect(try instance.invoke("increment", [.i32(2)]) == [.i32(2)])
        #expect(try instance.invoke("increment", [.i32(3)]) == [.i32(5)])
        #expect(try GuestInstance(module: counter).invoke("get") == [.i32(0)], "each instance has its own state")
    }

    @Test func inspectionNamesImportsExportsAndMemory() throws {
        let info = try Guests.load("messages").info
        #expect(info.imports.map { "\($0.module).\($0.name)" }.contains("ferry.receive"))
        let serve = try #require(info.exports.first { $0.name == "serve" })
        #expect(serve.signature == "() -> (i32)")
        #expect(info.memoryPages == 2)
        #expect(info.exportsStackPointer)
        #expect(info.canBeCheckpointed == false, "not built with Asyncify")
    }

    @Test(
        arguments: [
            ([UInt8]("garbage, not wasm".utf8), "neither WebAssembly binary"),
            ([0x00, 0x61, 0x73, 0x6D, 0x01, 0x00, 0x00, 0x00, 0x01, 0xFF], "module"),  // truncated section
            (Array("(module (func (result i32) i64.const 1))".utf8), "module"),  // type mismatch in a body
            (Array("(module (func $f (export \"f\") (unknown-instruction)))".utf8), "text"),
        ] as [([UInt8], String)]
    )
    func aBadModuleIsRefusedBeforeItRuns(bytes: [UInt8], mention: String) {
        do {
            _ = try GuestModule(bytes: bytes, name: "bad.wasm")
            Issue.record("accepted a bad module")
        } catch let error as GuestError {
            #expect(
                "\(error)".contains("bad.wasm is not a valid WebAssembly module, refused before running"),
                "\(error)"
            )
            #expect("\(error)".lowercased().contains(mention.lowercased()), "\(error)")
        } catch {
            Issue.record("unexpected \(error)")
        }
    }

    @Test func theCacheLoadsEachModuleOnce() throws {
        let cache = GuestModuleCache()
        let bytes = try Guests.load("counter").bytes
        let first = try cache.module(for: bytes)
        let second = try cache.module(for: bytes)
        #expect(first.bytes == second.bytes)
        #expect(cache.count == 1)
        for _ in 0..<3 { _ = try GuestInstance(module: second).invoke("increment", [.i32(1)]) }
    }
}

extension GuestRuns {
    @Suite struct GuestLimitTests {
        func stop(_ body: () throws -> Void) -> GuestStop? {
            do {
                try body()
                return nil
            } catch let stop as GuestStop {
                return stop
            } catch {
                Issue.record("unexpected \(error)")
                return nil
            }
        }

        @Test(arguments: TestEngines.available) func aSpinningGuestRunsOutOfFuel(engine: GuestEngine) throws {
            let instance = try GuestInstance(
                module: try Guests.load("spin"),
                limits: GuestLimits(fuel: 10_000_000),
                engine: engine
            )
            let stop = self.stop { try instance.invoke("spin") }
            #expect(stop == .outOfFuel(budget: 10_000_000))
            #expect(stop?.description == "out of fuel after 10000000 units")
        }

        @Test(arguments: TestEngines.available) func aMemoryBombStopsAtTheLimit(engine: GuestEngine) throws {
            let instance = try GuestInstance(
                module: try Guests.load("membomb"),
                limits: GuestLimits(maxMemoryBytes: 16 << 20),
                engine: engine
            )
            switch engine {
            case .wasmkit:
                // WasmKit stops the guest at the memory.grow that would pass the limit.
                let stop = self.stop { try instance.invoke("bomb", [.i32(1000)]) }
                #expect(stop == .memoryLimit(limitBytes: 16 << 20, requestedBytes: (16 << 20) + 65536))
                #expect(stop?.description.hasPrefix("memory limit 16 MiB") == true)
            case .wasmtime:
                // Wasmtime's limiter refuses the grow: the guest gets -1 and stops asking.
                let grown = Int32(bitPattern: try instance.invoke("bomb", [.i32(1000)])[0].i32)
                #expect(grown < 1000)
                #expect(instance.memoryBytes <= 16 << 20)
            }
            // Under the limit it gets what it asked for.
            let modest = try GuestInstance(
                module: try Guests.load("membomb"),
                limits: GuestLimits(maxMemoryBytes: 16 << 20),
                engine: engine
            )
            #expect(try modest.invoke("bomb", [.i32(10)]) == [.i32(10)])
        }

        @Test(arguments: TestEngines.available) func deepRecursionExhaustsTheCallStack(engine: GuestEngine) throws {
            let instance = try GuestInstance(
                module: try Guests.load("recursion"),
                limits: GuestLimits(stackBytes: 64 << 10),
                engine: engine
            )
            #expect(try instance.invoke("recurse", [.i32(100)]) == [.i32(100)])
            let stop = self.stop { try instance.invoke("recurse", [.i32(10_000_000)]) }
            #expect(stop == .callStackExhausted(stackBytes: 64 << 10))
            #expect(try instance.invoke("recurse", [.i32(10)]) == [.i32(10)], "the instance is usable after the stop")
        }

        @Test(arguments: TestEngines.available) func aDeadlineStopsAGuestThatNeverCallsTheHost(
            engine: GuestEngine
        ) throws {
            let instance = try GuestInstance(
                module: try Guests.load("spin"),
                limits: GuestLimits(deadline: .milliseconds(200)),
                engine: engine
            )
            let started = ContinuousClock.now
            let stop = self.stop { try instance.invoke("spin") }
            #expect(stop == .deadline(.milliseconds(200)))
            #expect(ContinuousClock.now - started >= .milliseconds(200))
            // And one that yields is stopped at its next host call.
            let yielding = try GuestInstance(
                module: try Guests.load("spin"),
                limits: GuestLimits(deadline: .milliseconds(100)),
                engine: engine
            )
            #expect(self.stop { try yielding.invoke("spin_yielding") } == .deadline(.milliseconds(100)))
        }

        @Test(arguments: TestEngines.available) func oneRunawayGuestDoesNotStopTheOthers(
            engine: GuestEngine
        ) async throws {
            let spin = try Guests.load("spin")
            let counter = try Guests.load("counter")
            try await withThrowingTaskGroup(of: Int32.self) { group in
                group.addTask {
                    let instance = try GuestInstance(
                        module: spin,
                        limits: GuestLimits(deadline: .seconds(1)),
                        engine: engine
                    )
                    do {
                        try instance.invoke("spin")
                    } catch let stop as GuestStop {
                        #expect(stop == .deadline(.seconds(1)))
                    }
                    return -1
                }
                for _ in 0..<4 {
                    group.addTask {
                        let instance = try GuestInstance(module: counter, engine: engine)
                        var last: [Value] = []
                        for _ in 0..<1000 { last = try instance.invoke("increment", [.i32(1)]) }
                        return Int32(bitPattern: last[0].i32)
                    }
                }
                var finished: [Int32] = []
                for try await result in group { finished.append(result) }
                #expect(finished.filter { $0 == 1000 }.count == 4)
            }
        }

        @Test(arguments: TestEngines.available) func wrongCallsAreRefusedWithWhatTheExportTakes(
            engine: GuestEngine
        ) throws {
            let instance = try GuestInstance(module: try Guests.load("counter"), engine: engine)
            #expect(throws: GuestError.self) { try instance.invoke("decrement", [.i32(1)]) }
            do {
                try instance.invoke("increment", [.i64(1)])
                Issue.record("accepted an i64 for an i32")
            } catch let error as GuestError {
                #expect("\(error)".contains("it takes (i32)"))
            }
        }
    }
}

extension GuestRuns {
    @Suite struct GuestHostTests {
        @Test(arguments: TestEngines.available) func guestsLogExchangeMessagesAndReadClockAndRandomness(
            engine: GuestEngine
        ) throws {
            let lines = NIOLockedValueBox<[String]>([])
            let mailbox = GuestMailbox()
            mailbox.post(Array("hello".utf8))
            mailbox.post(Array("ferry".utf8))
            let instance = try GuestInstance(
                module: try Guests.load("messages"),
                environment: GuestEnvironment(
                    mailbox: mailbox,
                    log: { line in lines.withLockedValue { $0.append(line) } }
                ),
                engine: engine
            )
            #expect(try instance.invoke("serve") == [.i32(2)])
            #expect(mailbox.takeSent().map { String(decoding: $0, as: UTF8.self) } == ["HELLO", "FERRY"])
            #expect(lines.withLockedValue { $0 } == ["messages guest: serving"])
            let rolls = Set(try (0..<50).map { _ in try instance.invoke("roll")[0].i32 })
            #expect(rolls.count > 10 && rolls.allSatisfy { $0 < 256 })
            #expect(Int64(bitPattern: try instance.invoke("uptime_ms")[0].i64) >= 0)
        }

        @Test(arguments: TestEngines.available) func aHostCallWithABadPointerStopsTheGuestNotTheHost(
            engine: GuestEngine
        ) throws {
            // log(ptr = 0xFFFF_0000, len = 1000) points past the one-page memory.
            let module = try GuestModule(
                bytes: Array(
                    """
                    (module
                      (import "ferry" "log" (func $log (param i32 i32)))
                      (memory (export "memory") 1)
                      (func (export "lie") (call $log (i32.const -65536) (i32.const 1000))))
                    """.utf8
                )
            )
            do {
                try GuestInstance(module: module, engine: engine).invoke("lie")
                Issue.record("the host read out of bounds")
            } catch let stop as GuestStop {
                #expect(stop.description.hasPrefix("bad host call: log:"))
            }
        }

        @Test(arguments: TestEngines.available) func aWASICommandGetsItsArgumentsAndStandardOutput(
            engine: GuestEngine
        ) throws {
            let pipe = Pipe()
            let instance = try GuestInstance(
                module: try Guests.load("hello"),
                environment: GuestEnvironment(
                    arguments: ["one", "two"],
                    standardOutput: pipe.fileHandleForWriting.fileDescriptor
                ),
                engine: engine
            )
            #expect(try instance.runCommand() == 0)
            try pipe.fileHandleForWriting.close()
            let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            #expect(output == "hello from a guest: one two\n")
        }
    }
}

import ArgumentParser
import FerryEndpoints
import FerryGuest
import FerryMigration
import Foundation
import Logging
import WasmKit

/// `ferry guest`: run and inspect WebAssembly guests.
struct GuestCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "guest",
        abstract: "Run and inspect WebAssembly guests (Ferry's process virtual machine).",
        subcommands: [Run.self, Inspect.self, Checkpoint.self, Restore.self, Engines.self]
    )

    struct Run: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "run",
            abstract: "Run a guest: call one export, or run a WASI command's _start.",
            discussion: """
                With --invoke the export's result is printed, one value per line; arguments are \
                read as the export's parameter types. Without it the module runs as a WASI \
                command and its exit code becomes ferry's. A guest over a limit is stopped with \
                the reason, and ferry exits 3.
                """
        )

        @Argument(help: "The module, .wasm or .wat; with --from, the SHA-256 of a module the node holds.")
        var file: String

        @Option(
            help: ArgumentHelp(
                "Code on demand: fetch the module from the node at HOST:PORT (by its digest) and run it here.",
                valueName: "HOST:PORT"
            ),
            transform: parseAddress
        )
        var from: ServiceEndpoint?

        @Option(help: ArgumentHelp("With --from: run it only if signed by this key.", valueName: "PUBKEYFILE"))
        var trust: [String] = []

        @Option(help: "The export to call.")
        var invoke: String?

        @Argument(parsing: .allUnrecognized, help: "Arguments for the export, or for the WASI command.")
        var arguments: [String] = []

        @OptionGroup var limitOptions: LimitOptions

        @Option(help: "Interpreter stack, which bounds call depth, e.g. 512KiB.", transform: parseSize)
        var stack: Int = 512 << 10

        @OptionGroup var engineOption: EngineOption

        @Option(help: "Print this many bytes at the address the call returns, as hex, instead of the values.")
        var resultBytes: Int?

        @Option(
            help: ArgumentHelp(
                "Listen on this Unix socket for 'ferry guest checkpoint --control', which captures the running guest at its next checkpoint (needs --invoke and a guest built with Asyncify).",
                valueName: "SOCKET"
            )
        )
        var control: String?

        @Option(
            name: .customLong("dir"),
            help: ArgumentHelp(
                "Give the guest a host directory: writable, or read-only with :ro; seen at GUEST (HOST's own path when left out).",
                valueName: "HOST[:GUEST][:ro]"
            )
        )
        var directories: [String] = []

        @Option(
            name: .customLong("lower"),
            help: ArgumentHelp(
                "Add a read-only lower layer under the --dir seen at GUEST: the guest sees the union, and its writes go to the --dir (copied up on first write). Repeat for more layers, topmost first.",
                valueName: "GUEST=HOST"
            )
        )
        var lowers: [String] = []

        /// The --dir views, with their --lower layers.
        func guestDirectories() throws -> [GuestDirectory] {
            var directories = try self.directories.map(GuestDirectory.init(parsing:))
            for lower in self.lowers {
                let parts = lower.split(separator: "=", maxSplits: 1).map(String.init)
                guard parts.count == 2, !parts[1].isEmpty else {
                    throw ValidationError("--lower takes GUEST=HOST, got '\(lower)'")
                }
                guard let index = directories.firstIndex(where: { $0.guestPath == parts[0] }) else {
                    throw ValidationError(
                        "--lower \(lower): no --dir is seen at \(parts[0]); give one, e.g. --dir ./scratch:\(parts[0])"
                    )
                }
                directories[index].lowers.append(parts[1])
            }
            return directories
        }

        /// The module: from the file, or fetched from a node by its digest.
        func loadModule() async throws -> GuestModule {
            guard let from = self.from else { return try GuestModule(path: self.file) }
            guard let digest = ModuleDigest(hex: self.file) else {
                throw ValidationError("with --from, give the module's SHA-256 (64 hex digits), got '\(self.file)'")
            }
            let client: NodeClient
            do {
                client = try await NodeClient.connect(to: from)
            } catch let error as NodeClient.Unreachable {
                throw CommandFailure(error.description)
            }
            defer { Task { await client.close() } }
            guard case .code(let data) = try await request(client, .code(digest.hex)) else {
                throw CommandFailure("the node at \(from) sent no code")
            }
            let bytes = [UInt8](data)
            guard ModuleDigest(of: bytes) == digest else {
                throw CommandFailure(
                    CodeRefusal.digestMismatch(expected: digest.hex, got: ModuleDigest(of: bytes).hex).description
                )
            }
            if !self.trust.isEmpty {
                do {
                    try ModuleSignature.verify(bytes, trusting: try self.trust.map(TrustedKey.init(path:)))
                } catch let refusal as CodeRefusal {
                    throw CommandFailure("refused the code from \(from) before running it: \(refusal)")
                }
            }
            return try GuestModule(bytes: bytes, name: digest.short)
        }

        func run() async throws {
            let logger = Logger(label: "ferry.guest")
            let module = try await self.loadModule()
            var limits = self.limitOptions.limits
            limits.stackBytes = self.stack
            let arguments = self.arguments.first == "--" ? Array(self.arguments.dropFirst()) : self.arguments
            let environment = GuestEnvironment(
                arguments: self.invoke == nil ? arguments : [],
                directories: try self.guestDirectories(),
                log: { line in logger.info("\(line)") }
            )
            let engine = try self.engineOption.choose()
            do {
                if let control = self.control {
                    guard let name = self.invoke else {
                        throw ValidationError("--control checkpoints an export's call: give --invoke NAME")
                    }
                    let instance = try GuestInstance(
                        module: module,
                        limits: limits,
                        environment: environment,
                        engine: engine
                    )
                    let values = try GuestValues.parse(arguments, as: try module.parameters(of: name), export: name)
                    try await self.runUnderControl(
                        instance,
                        name,
                        values,
                        socket: control,
                        limits: limits,
                        environment: environment
                    )
                    return
                }
                let instance = try GuestInstance(
                    module: module,
                    limits: limits,
                    environment: environment,
                    engine: engine
                )
                if let name = self.invoke {
                    let values = try GuestValues.parse(arguments, as: try module.parameters(of: name), export: name)
                    try GuestCommand.printResults(
                        try instance.invoke(name, values),
                        of: instance,
                        bytes: self.resultBytes
                    )
                } else {
                    let code = try instance.runCommand()
                    if code != 0 { throw ExitCode(Int32(bitPattern: code)) }
                }
            } catch let stop as GuestStop {
                printError("guest stopped: \(stop)")
                throw ExitCode(3)
            }
        }

        /// Runs the call while answering checkpoint requests on the control socket: each one is
        /// taken at the guest's next checkpoint; the guest then stops there, or goes on from the
        /// snapshot in a fresh instance.
        private func runUnderControl(
            _ first: GuestInstance,
            _ name: String,
            _ values: [Value],
            socket: String,
            limits: GuestLimits,
            environment: GuestEnvironment
        ) async throws {
            guard first.module.info.canBeCheckpointed else {
                throw ValidationError(
                    "\(self.file) cannot be checkpointed (see 'ferry guest inspect'); run it without --control"
                )
            }
            let control = try await GuestControl.listen(at: socket)
            printLine("control on \(socket)")
            var instance = first
            var outcome: GuestCallOutcome
            do {
                outcome = try instance.call(name, values) { _ in control.isRequested }
                while case .checkpointed(let snapshot) = outcome, let request = control.take() {
                    let bytes = snapshot.serialized()
                    do {
                        try Data(bytes).write(to: URL(fileURLWithPath: request.path))
                        request.answer.succeed("ok checkpointed into \(request.path) (\(bytes.count) bytes)")
                    } catch {
                        request.answer.succeed("error: cannot write \(request.path): \(error.localizedDescription)")
                    }
                    if !request.leaveRunning {
                        control.close("the guest stopped at a checkpoint")
                        printLine(
                            "checkpointed into \(request.path); the guest stopped there (ferry guest restore continues it)"
                        )
                        return
                    }
                    (instance, outcome) = try GuestInstance.resume(
                        snapshot,
                        module: instance.module,
                        limits: limits,
                        environment: environment,
                        engine: instance.engine
                    ) { _ in control.isRequested }
                }
            } catch {
                control.close("the guest stopped: \(error)")
                throw error
            }
            control.close("the guest finished before its next checkpoint")
            if case .finished(let results) = outcome {
                try GuestCommand.printResults(results, of: instance, bytes: self.resultBytes)
            }
        }
    }

    /// The limit options every command that runs a guest takes.
    struct LimitOptions: ParsableArguments {
        @Option(help: "Fuel budget (about one unit per instruction).")
        var fuel: UInt64?

        @Option(help: "Linear memory limit, e.g. 16MiB, 64KiB or bytes.", transform: parseSize)
        var maxMemory: Int = 64 << 20

        @Option(help: "Wall-clock limit in seconds.", transform: parseSeconds)
        var deadline: Duration?

        func validate() throws {
            if self.maxMemory < 65536 { throw ValidationError("--max-memory must be at least one 64 KiB page") }
        }

        var limits: GuestLimits {
            GuestLimits(
                fuel: self.fuel,
                maxMemoryBytes: self.maxMemory,
                deadline: self.deadline
            )
        }
    }

    /// Prints a call's results: each value, or `bytes` bytes of memory at the address it returned, as hex.
    static func printResults(_ values: [Value], of instance: GuestInstance?, bytes: Int?) throws {
        if let bytes, let instance, let address = values.first {
            let memory = try instance.readMemory(offset: Int(address.i32), count: bytes)
            printLine(GuestValues.hex(memory))
        } else {
            for value in values { printLine(GuestValues.describe(value)) }
        }
    }

    /// Prints a finished call's results, or writes its snapshot; exits 3 when the guest was stopped.
    static func report(
        _ outcome: () throws -> GuestCallOutcome,
        instance: () -> GuestInstance?,
        resultBytes: Int?,
        out: String?
    ) throws {
        do {
            switch try outcome() {
            case .finished(let values):
                try Self.printResults(values, of: instance(), bytes: resultBytes)
            case .checkpointed(let snapshot):
                guard let out else { throw ValidationError("a checkpoint was taken but no --out file was given") }
                let bytes = snapshot.serialized()
                try Data(bytes).write(to: URL(fileURLWithPath: out))
                printLine("checkpointed into \(out) (\(bytes.count) bytes)")
            }
        } catch let stop as GuestStop {
            printError("guest stopped: \(stop)")
            throw ExitCode(3)
        }
    }

    struct Checkpoint: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "checkpoint",
            abstract:
                "Save a guest's execution state: of a running guest (--control), or of a call run here until its Nth checkpoint.",
            discussion: """
                The guest must be built with Asyncify and call ferry.checkpoint (see Guests/sha256.c). \
                The snapshot holds linear memory, mutable globals and the unwound call stack; \
                'ferry guest restore' continues it in a fresh instance, in this process or another.

                A running guest is one started with 'ferry guest run --control SOCKET': it is \
                captured at its next checkpoint and then stops there, ready to be restored \
                elsewhere, or carries on with --leave-running.
                """
        )

        @Argument(help: "The module, .wasm or .wat (not with --control).")
        var file: String?

        @Option(help: "The export to call (not with --control).")
        var invoke: String?

        @Argument(parsing: .allUnrecognized, help: "Arguments for the export.")
        var arguments: [String] = []

        @Option(help: ArgumentHelp("The control socket of a running guest.", valueName: "SOCKET"))
        var control: String?

        @Flag(help: "With --control: the guest carries on after the checkpoint instead of stopping.")
        var leaveRunning = false

        @Option(help: "Take the checkpoint at the guest's Nth checkpoint call (not with --control).")
        var at = 1

        @Option(help: "Where to write the snapshot.")
        var out: String

        @Option(help: "When the call finishes first: print this many bytes at the address it returns, as hex.")
        var resultBytes: Int?

        @OptionGroup var limits: LimitOptions

        func validate() throws {
            if self.control != nil {
                guard self.file == nil, self.invoke == nil, self.arguments.isEmpty else {
                    throw ValidationError(
                        "--control checkpoints a guest that is already running: give no FILE or --invoke"
                    )
                }
            } else {
                guard self.file != nil, self.invoke != nil else {
                    throw ValidationError(
                        "give --control SOCKET for a running guest, or FILE --invoke NAME to run one here"
                    )
                }
                guard !self.leaveRunning else { throw ValidationError("--leave-running goes with --control") }
            }
        }

        func run() async throws {
            if let control = self.control {
                let out = URL(fileURLWithPath: self.out).standardizedFileURL.path
                let mode = self.leaveRunning ? "leave-running" : "stop"
                let answer = try await GuestControl.request("checkpoint \(mode) \(out)", at: control)
                guard answer.hasPrefix("ok ") else {
                    printError(answer.isEmpty ? "error: the guest closed its control socket without answering" : answer)
                    throw ExitCode(1)
                }
                printLine(String(answer.dropFirst(3)))
                return
            }
            guard let file = self.file, let invoke = self.invoke else { return }
            let module = try GuestModule(path: file)
            let instance = try GuestInstance(module: module, limits: self.limits.limits)
            let values = try GuestValues.parse(self.arguments, as: try instance.parameters(of: invoke), export: invoke)
            let at = self.at
            try GuestCommand.report(
                { try instance.call(invoke, values) { $0 == at } },
                instance: { instance },
                resultBytes: self.resultBytes,
                out: self.out
            )
        }
    }

    struct Restore: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "restore",
            abstract: "Continue a guest from a snapshot in a fresh instance, and print what its call returns."
        )

        @Argument(help: "The snapshot written by 'ferry guest checkpoint'.")
        var snapshot: String

        @Option(help: "The module the snapshot was taken from.")
        var module: String

        @Option(help: "Checkpoint again at the Nth checkpoint after the restore (needs --out).")
        var at: Int?

        @Option(help: "Where to write the next snapshot.")
        var out: String?

        @Option(help: "Print this many bytes at the address the call returns, as hex.")
        var resultBytes: Int?

        @OptionGroup var limits: LimitOptions

        func run() async throws {
            guard let data = FileManager.default.contents(atPath: self.snapshot) else {
                throw GuestError.cannotRead(path: self.snapshot)
            }
            let snapshot = try GuestSnapshot(serialized: [UInt8](data))
            let module = try GuestModule(path: self.module)
            let at = self.at
            var restored: GuestInstance?
            try GuestCommand.report(
                {
                    let (instance, outcome) = try GuestInstance.resume(
                        snapshot,
                        module: module,
                        limits: self.limits.limits
                    ) { at == $0 }
                    restored = instance
                    return outcome
                },
                instance: { restored },
                resultBytes: self.resultBytes,
                out: self.out
            )
        }
    }

    struct Engines: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "engines",
            abstract: "List the engines that can run guests here, and why one cannot.",
            discussion: """
                wasmkit, an interpreter in Swift, is always there. wasmtime compiles modules to \
                machine code with Cranelift; Ferry loads its C library at run time: \(WasmtimeLibrary.installHint).
                """
        )

        @Flag(help: "Print JSON: one object per engine with name, available, and detail or reason.")
        var json = false

        struct Row: Encodable {
            var name: String
            var available: Bool
            var detail: String?
            var reason: String?
        }

        func run() async throws {
            let rows = GuestEngine.allCases.map { engine in
                switch engine.availability {
                case .success(let detail): Row(name: engine.rawValue, available: true, detail: detail)
                case .failure(.engineUnavailable(_, let reason)):
                    Row(name: engine.rawValue, available: false, reason: reason)
                case .failure(let error): Row(name: engine.rawValue, available: false, reason: "\(error)")
                }
            }
            if self.json {
                printLine(try jsonLine(rows))
                return
            }
            for row in rows {
                let state = row.available ? "available" : "unavailable"
                printLine(
                    "\(row.name.padding(toLength: 9, withPad: " ", startingAt: 0)) \(state)  \(row.detail ?? row.reason ?? "")"
                )
            }
        }
    }

    struct Inspect: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "inspect",
            abstract: "Show a module's imports, exports and memory, and whether it can be checkpointed."
        )

        @Argument(help: "The module, .wasm or .wat.")
        var file: String

        @Flag(help: "Print JSON.")
        var json = false

        func run() async throws {
            let info = try GuestModule(path: self.file).info
            if self.json {
                printLine(try jsonLine(info))
                return
            }
            printLine("module \(self.file)")
            for entry in info.imports { printLine("import  \(entry.module).\(entry.name) (\(entry.kind))") }
            for entry in info.exports { printLine("export  \(entry.name) \(entry.signature ?? "(\(entry.kind))")") }
            if let pages = info.memoryPages {
                let maximum = info.memoryMaximumPages.map { "\($0) pages" } ?? "no maximum"
                printLine("memory  \(pages) pages (\(pages * 64) KiB) initially, \(maximum)")
            }
            let missing = [
                info.exportsStackPointer ? nil : "export __stack_pointer (link with -Wl,--export=__stack_pointer)",
                info.hasAsyncify ? nil : "the Asyncify transform (wasm-opt --asyncify)",
            ].compactMap { $0 }
            printLine(
                info.canBeCheckpointed
                    ? "checkpoint: yes"
                    : "checkpoint: no (needs \(missing.joined(separator: " and ")))"
            )
        }
    }
}

/// Parses `16MiB`, `64KiB`, `1GiB` or a plain byte count.
func parseSize(_ text: String) throws -> Int {
    let units: [(String, Int)] = [
        ("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10), ("G", 1 << 30), ("M", 1 << 20), ("K", 1 << 10),
    ]
    for (suffix, scale) in units where text.hasSuffix(suffix) {
        if let number = Int(text.dropLast(suffix.count)) { return number * scale }
    }
    guard let bytes = Int(text) else {
        throw ValidationError("'\(text)' is not a size; write e.g. 16MiB, 512KiB or 65536")
    }
    return bytes
}

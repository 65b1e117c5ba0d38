import ArgumentParser
import FerryGuest

/// `--engine`, for every command that runs guests.
struct EngineOption: ParsableArguments {
    @Option(
        help: ArgumentHelp(
            "The engine that runs guests: wasmkit (the interpreter, built in) or wasmtime (compiled, when installed: see 'ferry guest engines'). Default: FERRY_ENGINE, else wasmkit.",
            valueName: "ENGINE"
        ),
        transform: GuestEngine.named
    )
    var engine: GuestEngine?

    /// The engine asked for (or FERRY_ENGINE's), checked to run here and made this process's
    /// default; a missing one is refused with how to install it.
    func choose() throws -> GuestEngine {
        let engine = try self.engine ?? GuestEngine.fromEnvironment()
        if case .failure(let reason) = engine.availability { throw CommandFailure("\(reason)") }
        GuestEngine.current = engine
        return engine
    }
}

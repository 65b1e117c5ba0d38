@_spi(WASIPlatform) import WASI
import WasmKit

/// WASI preview1 for a guest, on either engine: Ferry's own implementation (WasmKit's WASI over
/// ``LayeredFileSystem``), so that layered directories, standard streams and arguments behave the
/// same whichever engine runs the code.
enum GuestWASI {
    static let module = "wasi_snapshot_preview1"

    /// The WASI state for `environment`: its arguments, variables, streams and directories.
    static func bridge(for environment: GuestEnvironment) throws -> WASIBridgeToHost {
        // Built first so that a bad directory is reported as such, not as a WASI failure.
        let fileSystem = try LayeredFileSystem(environment.directories)
        do {
            return try WASIBridgeToHost(
                args: ["guest"] + environment.arguments,
                environment: environment.environment,
                fileSystem: .custom { fileSystem }
                    .withStdio(
                        stdin: environment.standardInput,
                        stdout: environment.standardOutput,
                        stderr: environment.standardError
                    )
                    .withPreopens(
                        environment.directories.map { .init(guestPath: $0.guestPath, hostPath: $0.layers[0]) }
                    )
            )
        } catch {
            throw GuestError.cannotInstantiate(reason: "WASI: \(error)")
        }
    }

    /// The WASI functions the guest imports, reading and writing its memory as `Memory`.
    static func functions<Memory: HostMemory & SendableMetatype>(
        of wasi: WASIBridgeToHost,
        imported: Set<String>,
        memory _: Memory.Type
    ) -> [HostFunction] {
        // WasmKit's WASI builds its whole function table per call: a guest that imports none skips it.
        guard imported.contains(where: { $0.hasPrefix("\(Self.module).") }) else { return [] }
        return wasi.hostFunctions(capabilities: WASICapability<Memory>.all).compactMap { name, function in
            guard imported.contains("\(Self.module).\(name)") else { return nil }
            return HostFunction(module: Self.module, name: name, type: function.type) { call, values in
                guard let memory = call.memory as? Memory else {
                    throw GuestStop.badHostCall("\(name): the guest exports no memory named 'memory'")
                }
                return try function.implementation(memory, values)
            }
        }
    }
}

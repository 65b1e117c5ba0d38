import CFerryWasmtime
import Foundation

/// Wasmtime's C library, opened at run time: nothing in the build or in `swift test` needs it.
///
/// Where it is looked for, in order: `FERRY_WASMTIME_LIBRARY` (a path to the shared library);
/// the `wasmtime` package from PyPI in the usual Python locations (its wheel ships
/// `_libwasmtime.so` with the whole C API); `libwasmtime.so` on the loader's path (Wasmtime's
/// own C API release). Ferry declares the functions it calls for Wasmtime 50
/// (`CFerryWasmtime.h`) and refuses another major version when it can tell, and any library that
/// lacks one of them.
public struct WasmtimeLibrary: @unchecked Sendable {
    // Sendable: the table is written once, when the library is opened, and only read after.
    let api: ferry_wasmtime_api
    /// Where it was loaded from.
    public let path: String
    /// Its version, when the package it came with says (PyPI's `wasmtime-X.Y.Z.dist-info`).
    public let version: String?

    /// The version of Wasmtime's C API that Ferry speaks.
    public static let majorVersion = Int(FERRY_WASMTIME_MAJOR)
    /// What a user runs to get it.
    public static let installHint =
        "pip install 'wasmtime==\(majorVersion).*' (Ferry finds it in Python's site-packages), or set FERRY_WASMTIME_LIBRARY to the path of a libwasmtime.so of Wasmtime \(majorVersion)"

    /// The library, opened on first use; or why it cannot be used.
    public static let shared: Result<WasmtimeLibrary, GuestError> = Self.open()

    private static func open() -> Result<WasmtimeLibrary, GuestError> {
        for path in Self.candidates() {
            switch Self.open(path) {
            case .success(let library): return .success(library)
            case .failure(let reason):
                // A library that is present but unusable is the answer: say why, do not look on.
                let named = ProcessInfo.processInfo.environment["FERRY_WASMTIME_LIBRARY"] == path
                if named || (path.hasPrefix("/") && FileManager.default.fileExists(atPath: path)) {
                    let source = named ? "FERRY_WASMTIME_LIBRARY=\(path)" : path
                    return .failure(.engineUnavailable(engine: "wasmtime", reason: "\(source): \(reason)"))
                }
            }
        }
        return .failure(
            .engineUnavailable(
                engine: "wasmtime",
                reason:
                    "no Wasmtime library found (looked in Python's site-packages: VIRTUAL_ENV, ~/.local, /usr/local, /usr/lib/python3, pyenv; and for libwasmtime.so on the loader's path); \(Self.installHint)"
            )
        )
    }

    /// Opens `path`: the library, or the reason it cannot be used.
    private static func open(_ path: String) -> Result<WasmtimeLibrary, Refusal> {
        let version = Self.packageVersion(of: path)
        if let version, Int(version.prefix { $0 != "." }) != Self.majorVersion {
            return .failure(
                Refusal(
                    "it is Wasmtime \(version), and Ferry speaks Wasmtime \(Self.majorVersion)'s C API; \(Self.installHint)"
                )
            )
        }
        var error = [CChar](repeating: 0, count: 512)
        guard let api = ferry_wasmtime_open(path, &error, error.count) else {
            return .failure(
                Refusal(String(decoding: error.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self))
            )
        }
        return .success(WasmtimeLibrary(api: api.pointee, path: path, version: version))
    }

    private struct Refusal: Error, CustomStringConvertible {
        let description: String
        init(_ description: String) { self.description = description }
    }

    /// Paths to try, most specific first.
    static func candidates() -> [String] {
        let environment = ProcessInfo.processInfo.environment
        if let path = environment["FERRY_WASMTIME_LIBRARY"], !path.isEmpty { return [path] }
        let home = environment["HOME"] ?? "/root"
        var roots = [
            "\(home)/.local/lib/python3*/site-packages",
            "/usr/local/lib/python3*/dist-packages",
            "/usr/local/lib/python3*/site-packages",
            "/usr/lib/python3/dist-packages",
            "\(home)/.pyenv/versions/*/lib/python3*/site-packages",
            "/var/tmp/ferry-bench-venv/lib/python3*/site-packages",
        ]
        if let venv = environment["VIRTUAL_ENV"] { roots.insert("\(venv)/lib/python3*/site-packages", at: 0) }
        let found = roots.flatMap { Self.glob("\($0)/wasmtime/linux-*/_libwasmtime.so") }
        return found + ["libwasmtime.so"]
    }

    /// The version in the `wasmtime-X.Y.Z.dist-info` folder beside the package holding `path`.
    private static func packageVersion(of path: String) -> String? {
        let sitePackages = URL(fileURLWithPath: path).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().path
        return Self.glob("\(sitePackages)/wasmtime-*.dist-info").compactMap { folder -> String? in
            let name = URL(fileURLWithPath: folder).lastPathComponent
            return String(name.dropFirst("wasmtime-".count).dropLast(".dist-info".count))
        }.first
    }

    private static func glob(_ pattern: String) -> [String] {
        var found = glob_t()
        defer { globfree(&found) }
        guard Glibc.glob(pattern, 0, nil, &found) == 0 else { return [] }
        return (0..<Int(found.gl_pathc)).compactMap { found.gl_pathv[$0].map { String(cString: $0) } }
    }

    /// The message of a Wasmtime error, which is freed.
    func consume(_ error: OpaquePointer) -> String {
        var message = wasm_byte_vec_t()
        self.api.wasmtime_error_message(error, &message)
        defer {
            self.api.wasm_byte_vec_delete(&message)
            self.api.wasmtime_error_delete(error)
        }
        return Self.string(message)
    }

    static func string(_ bytes: wasm_byte_vec_t) -> String {
        guard let data = bytes.data else { return "" }
        return String(decoding: UnsafeRawBufferPointer(start: data, count: bytes.size), as: UTF8.self)
    }
}

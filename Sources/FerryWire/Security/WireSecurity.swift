import FerryPosix
import Foundation
import NIOConcurrencyHelpers

/// The credentials this process's FerryWire servers and clients use unless told otherwise: set
/// once at start-up by the `ferry` command (from `--data-dir`, `FERRY_DATA_DIR` or `~/.ferry`),
/// as logging and metrics are bootstrapped. Without credentials connections are plain TCP, as in
/// unit tests of the layers above.
public enum WireSecurity {
    private static let current = NIOLockedValueBox<ClusterCredentials?>(nil)

    public static func bootstrap(_ credentials: ClusterCredentials?) {
        Self.current.withLockedValue { $0 = credentials }
    }

    public static var credentials: ClusterCredentials? {
        Self.current.withLockedValue { $0 }
    }

    /// Names the credentials directory a `ferry` process started by another uses (empty: none),
    /// ahead of FERRY_DATA_DIR and ~/.ferry: a child speaks to its parent with the parent's.
    public static let environmentVariable = "FERRY_CREDENTIALS"

    /// This process's environment, with ``environmentVariable`` naming its credentials: for the
    /// `ferry` processes it starts.
    public static var childEnvironment: [String: String] {
        ProcessInfo.processInfo.environment.merging([Self.environmentVariable: Self.credentials?.directory ?? ""]) {
            $1
        }
    }

    /// Where a process finds its credentials: `explicit` (a command's flags), else
    /// ``environmentVariable`` (set by the `ferry` that started it; empty for none), else
    /// `FERRY_DATA_DIR`'s `tls/`, else `~/.ferry/tls`.
    public static func directory(explicit: String?) -> String? {
        if let explicit { return explicit }
        if let inherited = ProcessEnvironment.value(Self.environmentVariable) {
            return inherited.isEmpty ? nil : inherited
        }
        return ClusterCredentials.directory(inDataDirectory: Self.dataDirectory(explicit: nil))
    }

    /// A command's data directory: `explicit` (its `--data-dir`), else `FERRY_DATA_DIR`, else
    /// `~/.ferry`, where `ferry up` keeps its state unless told otherwise.
    public static func dataDirectory(explicit: String?) -> String {
        explicit ?? ProcessEnvironment.value("FERRY_DATA_DIR") ?? Self.defaultDataDirectory
    }

    /// `~/.ferry`: under `HOME`, else the password database's home. Joined as text: URL's path
    /// handling made the runtime scan every protocol conformance of the binary, a tenth of a
    /// `ferry endpoints lookup`.
    public static var defaultDataDirectory: String {
        let home =
            ProcessEnvironment.value("HOME").flatMap { $0.isEmpty ? nil : $0 }
            ?? FileManager.default.homeDirectoryForCurrentUser.path
        return home.hasSuffix("/") ? home + ".ferry" : home + "/.ferry"
    }

    /// Sets this process's credentials from ``directory(explicit:)``.
    public static func bootstrap(explicit: String?) throws {
        Self.bootstrap(try Self.directory(explicit: explicit).flatMap { try ClusterCredentials.load(from: $0) })
    }
}

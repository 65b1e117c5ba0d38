#if canImport(Glibc)
import Glibc
#endif

/// One variable of this process's environment. `getenv`, not `ProcessInfo`: these are read at
/// every `ferry` command's start, and ProcessInfo copies the whole environment into a dictionary
/// first (a tenth of `ferry endpoints lookup`'s time, in `perf record`).
public enum ProcessEnvironment {
    public static func value(_ name: String) -> String? {
        getenv(name).map { String(cString: $0) }
    }
}

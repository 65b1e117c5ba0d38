#if canImport(Glibc)
import Glibc
#endif

/// Runs `body` while holding an exclusive `flock` on `path` (created, empty, when missing), so
/// that processes opening one file at the same moment take turns: two nodes sharing a SQLite
/// file must not both find it new and both make its tables. SQLite's own locks are `fcntl`
/// locks, which `flock` never meets.
public func withExclusiveFileLock<Result>(_ path: String, _ body: () throws -> Result) throws -> Result {
    let descriptor = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
    guard descriptor >= 0 else { throw PosixError.system("cannot open \(path)") }
    defer { close(descriptor) }
    while flock(descriptor, LOCK_EX) != 0 {
        guard errno == EINTR else { throw PosixError.system("cannot lock \(path)") }
    }
    return try body()
}

import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// A process's standard output and error, and its `ferry.log` lines, in one file: the guest
/// writes to it through WASI, `ferry logs` reads it from any offset. When the process moves, the
/// last ``carriedBytes`` go with it and the file goes on at the new node, at the same offsets.
final class ProcessLog: @unchecked Sendable {
    // Sendable: the descriptor is written by the guest (appends) and read with pread; `base` is
    // set once, before the guest runs.
    static let carriedBytes = 8 << 20

    let path: String
    /// The descriptor the guest writes to (O_APPEND).
    let fd: Int32
    /// Offset of the file's first byte in the process's whole output (what earlier nodes kept
    /// and did not send).
    private(set) var base: Int

    /// - Parameter keep: go on with the file as it is (a node recovering the process).
    init(path: String, base: Int = 0, initial: [UInt8] = [], keep: Bool = false) throws {
        self.path = path
        self.base = base
        let fd = open(path, O_WRONLY | O_CREAT | (keep ? 0 : O_TRUNC) | O_APPEND | O_CLOEXEC, 0o600)
        guard fd >= 0 else {
            throw ProcessError("cannot create the process's log \(path): \(String(cString: strerror(errno)))")
        }
        self.fd = fd
        if !initial.isEmpty { _ = initial.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) } }
    }

    deinit { close(self.fd) }

    /// Starts the file again with the output that came with a process, which started at `base`
    /// (before the guest runs: nothing else writes meanwhile).
    func reset(base: Int, initial: [UInt8]) {
        ftruncate(self.fd, 0)
        self.base = base
        if !initial.isEmpty { _ = initial.withUnsafeBytes { write(self.fd, $0.baseAddress, $0.count) } }
    }

    /// Appends one line (a `ferry.log` call).
    func line(_ text: String) {
        let bytes = Array((text + "\n").utf8)
        _ = bytes.withUnsafeBytes { write(self.fd, $0.baseAddress, $0.count) }
    }

    /// Where the output ends now.
    var end: Int {
        var info = stat()
        guard fstat(self.fd, &info) == 0 else { return self.base }
        return self.base + Int(info.st_size)
    }

    /// Up to `limit` bytes from `offset` in the whole output (from the first kept byte when
    /// `offset` is older), and the offset after them.
    func read(from offset: Int, limit: Int = 1 << 20) -> (bytes: [UInt8], next: Int) {
        let start = max(offset, self.base)
        let count = max(0, min(limit, self.end - start))
        guard count > 0 else { return ([], start) }
        let reader = open(self.path, O_RDONLY | O_CLOEXEC)
        guard reader >= 0 else { return ([], start) }
        defer { close(reader) }
        var bytes = [UInt8](repeating: 0, count: count)
        let got = bytes.withUnsafeMutableBytes { pread(reader, $0.baseAddress, count, off_t(start - self.base)) }
        guard got > 0 else { return ([], start) }
        return (Array(bytes.prefix(got)), start + got)
    }

    /// What travels with the process: the last ``carriedBytes``, and the offset they start at.
    func tail() -> (base: Int, bytes: [UInt8]) {
        let end = self.end
        let start = max(self.base, end - Self.carriedBytes)
        return (start, self.read(from: start, limit: Self.carriedBytes).bytes)
    }
}

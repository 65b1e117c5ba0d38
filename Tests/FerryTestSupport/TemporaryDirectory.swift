#if canImport(Glibc)
import Glibc
#endif

/// A directory of a test's own under /tmp, removed when the test lets it go: every test that
/// writes files or keeps state (a node's data directory, a kv file) writes here, never to `~`.
public final class TemporaryDirectory: Sendable {
    public let path: String

    public init() throws {
        var template = Array("/tmp/ferry-test-XXXXXX".utf8CString)
        guard let made = mkdtemp(&template) else {
            throw TestFailure("mkdtemp: \(String(cString: strerror(errno)))")
        }
        self.path = String(cString: made)
    }

    deinit { _ = system("rm -rf '\(self.path)'") }

    /// Writes `bytes` to `name` in the directory; returns the file's path.
    @discardableResult
    public func write(_ name: String, _ bytes: [UInt8]) -> String {
        let path = self.path + "/" + name
        let file = fopen(path, "wb")!
        fwrite(bytes, 1, bytes.count, file)
        fclose(file)
        return path
    }

    @discardableResult
    public func write(_ name: String, _ text: String) -> String { self.write(name, Array(text.utf8)) }

    /// A file of `count` bytes whose content depends on the offset, so a wrong range shows.
    public static func pattern(_ count: Int) -> [UInt8] {
        // A plain loop over raw memory: debug builds make `map` over a range slow enough to matter.
        [UInt8](unsafeUninitializedCapacity: count) { bytes, initialized in
            var index = 0
            while index < count {
                bytes[index] = UInt8(truncatingIfNeeded: index &* 31 &+ index >> 8)
                index += 1
            }
            initialized = count
        }
    }

    /// Writes a large file quickly: `megabytes` copies of one patterned MiB.
    public func writeLarge(_ name: String, megabytes: Int) {
        let block = Self.pattern(1 << 20)
        let file = fopen(self.path + "/" + name, "wb")!
        for _ in 0..<megabytes { fwrite(block, 1, block.count, file) }
        fclose(file)
    }
}

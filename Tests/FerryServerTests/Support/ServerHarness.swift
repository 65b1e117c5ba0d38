import FerryServer
import Logging
import Metrics
import ServiceLifecycle

#if canImport(Glibc)
import Glibc
#endif

/// A directory of test files, removed when the test ends.
final class TestDirectory {
    let path: String

    init() throws {
        var template = Array("/tmp/ferry-test-XXXXXX".utf8CString)
        guard let made = mkdtemp(&template) else { throw TestHTTPConnection.Failure(description: "mkdtemp failed") }
        self.path = String(cString: made)
    }

    deinit { _ = system("rm -rf '\(self.path)'") }

    @discardableResult
    func write(_ name: String, _ bytes: [UInt8]) -> String {
        let path = self.path + "/" + name
        let file = fopen(path, "wb")!
        fwrite(bytes, 1, bytes.count, file)
        fclose(file)
        return path
    }

    func write(_ name: String, _ text: String) { self.write(name, Array(text.utf8)) }

    /// A file of `count` bytes whose content depends on the offset, so a wrong range shows.
    static func pattern(_ count: Int) -> [UInt8] {
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
    func writeLarge(_ name: String, megabytes: Int) {
        let block = Self.pattern(1 << 20)
        let file = fopen(self.path + "/" + name, "wb")!
        for _ in 0..<megabytes { fwrite(block, 1, block.count, file) }
        fclose(file)
    }
}

/// Runs a file server for the duration of `body`, then shuts it down gracefully.
func withFileServer<T>(
    _ configuration: FileServer.Configuration,
    metrics: any MetricsFactory = MetricsSystem.factory,
    _ body: (FileServer) async throws -> T
) async throws -> T {
    var logger = Logger(label: "test")
    logger.logLevel = ProcessEnvironment.testLogLevel
    let server = try await FileServer.bind(configuration, logger: logger, metricsFactory: metrics)
    let group = ServiceGroup(services: [server], logger: logger)
    return try await withThrowingTaskGroup(of: Void.self) { tasks in
        tasks.addTask { try await group.run() }
        do {
            let result = try await body(server)
            await group.triggerGracefulShutdown()
            try await tasks.waitForAll()
            return result
        } catch {
            await group.triggerGracefulShutdown()
            try? await tasks.waitForAll()
            throw error
        }
    }
}

enum ProcessEnvironment {
    /// `FERRY_TEST_LOG=debug swift test` shows the servers' logs.
    static var testLogLevel: Logger.Level {
        getenv("FERRY_TEST_LOG").flatMap { Logger.Level(rawValue: String(cString: $0)) } ?? .warning
    }
}

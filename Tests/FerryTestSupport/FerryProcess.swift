import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// The built `ferry` executable run as a user would: the one way tests start Ferry's own
/// processes, read their lines (a server's first is `listening on HOST:PORT`), and stop them.
public final class FerryProcess {
    public let process = Process()
    private let output = Pipe()
    private var pending = Data()

    /// The `ferry` binary beside the test bundle in the build folder.
    public static func executable() throws -> URL {
        let buildFolder = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        let candidates = [buildFolder, buildFolder.deletingLastPathComponent()].map {
            $0.appendingPathComponent("ferry")
        }
        guard let found = candidates.first(where: { FileManager.default.isExecutableFile(atPath: $0.path) }) else {
            throw TestFailure("build the ferry executable first (swift build)")
        }
        return found
    }

    /// Where its standard error goes.
    public enum Errors {
        case discarded
        /// Read with its output, line by line: for tests that wait for a log line.
        case merged
        /// Appended to this file, to read after the end.
        case file(String)
    }

    /// Starts `ferry ARGUMENTS`.
    /// - Parameters:
    ///   - wrapper: a program and its arguments that run `ferry` (strace, unshare), given the
    ///     binary's path and then `arguments`.
    public init(
        _ arguments: [String],
        errors: Errors = .discarded,
        environment: [String: String] = [:],
        under wrapper: [String] = []
    ) throws {
        let ferry = try Self.executable()
        if let program = wrapper.first {
            self.process.executableURL = URL(fileURLWithPath: program)
            self.process.arguments = Array(wrapper.dropFirst()) + [ferry.path] + arguments
        } else {
            self.process.executableURL = ferry
            self.process.arguments = arguments
        }
        if !environment.isEmpty {
            self.process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        }
        self.process.standardOutput = self.output
        switch errors {
        case .discarded: self.process.standardError = FileHandle.nullDevice
        case .merged: self.process.standardError = self.output
        case .file(let path):
            _ = FileManager.default.createFile(atPath: path, contents: nil)
            self.process.standardError = FileHandle(forWritingAtPath: path)
        }
        try self.process.run()
    }

    /// The next line of its output; waits for it (the process prints it when ready), `nil` at the end.
    public func nextLine() -> String? {
        while true {
            if let newline = self.pending.firstIndex(of: 10) {
                let line = String(decoding: self.pending[..<newline], as: UTF8.self)
                self.pending.removeSubrange(...newline)
                return line
            }
            let chunk = self.output.fileHandleForReading.availableData
            if chunk.isEmpty { return nil }
            self.pending.append(chunk)
        }
    }

    /// Reads its output to the end and waits for it: its exit status and its lines.
    public func finish() -> (status: Int32, output: String) {
        var lines: [String] = []
        while let line = self.nextLine() { lines.append(line) }
        self.process.waitUntilExit()
        return (self.process.terminationStatus, lines.joined(separator: "\n"))
    }

    /// Reads and drops the rest of its output on a thread of its own: a process that cannot
    /// write its lines would block.
    public func drainOutput() {
        let output = self.output
        Thread.detachNewThread { while !output.fileHandleForReading.availableData.isEmpty {} }
    }

    /// Sends `signal` and waits for the process to end; its exit status.
    public func stop(_ signal: Int32) -> Int32 {
        kill(self.process.processIdentifier, signal)
        self.process.waitUntilExit()
        return self.process.terminationStatus
    }

    deinit {
        if self.process.isRunning {
            kill(self.process.processIdentifier, SIGKILL)
            self.process.waitUntilExit()
        }
    }
}

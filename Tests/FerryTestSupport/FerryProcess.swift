import FerryPosix
import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// The built `ferry` executable run as a user would: the one way tests start Ferry's own
/// processes, read their lines (a server's first is `listening on HOST:PORT`), and stop them.
public final class FerryProcess {
    public let process: ChildProcess
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

    /// The environment every `ferry` a test starts runs in: the test's own, with FERRY_DATA_DIR
    /// naming an empty directory, so that no process takes the cluster credentials a `ferry up`
    /// left in `~/.ferry` (the test's own FerryWire clients have none). A test that runs a
    /// cluster with credentials names that cluster's data directory to its commands instead.
    public static let environment: [String: String] = {
        let directory = NSTemporaryDirectory() + "ferry-tests-without-credentials"
        try? FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        return ProcessInfo.processInfo.environment.merging(["FERRY_DATA_DIR": directory]) { $1 }
    }()

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
        let command = wrapper + [ferry.path] + arguments
        let errorDescriptor: Int32
        switch errors {
        case .discarded: errorDescriptor = open("/dev/null", O_WRONLY | O_CLOEXEC)
        case .merged: errorDescriptor = dup(self.output.fileHandleForWriting.fileDescriptor)
        case .file(let path): errorDescriptor = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o644)
        }
        defer { close(errorDescriptor) }
        self.process = try ChildProcess(
            command[0],
            Array(command.dropFirst()),
            environment: Self.environment.merging(environment) { $1 },
            standardOutput: self.output.fileHandleForWriting.fileDescriptor,
            standardError: errorDescriptor
        )
        // The child has its own copy: ours would keep the pipe from ever reaching its end.
        try? self.output.fileHandleForWriting.close()
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
        self.process.signal(signal)
        self.process.waitUntilExit()
        return self.process.terminationStatus
    }

    deinit {
        if self.process.isRunning {
            self.process.signal(SIGKILL)
            self.process.waitUntilExit()
        }
    }
}

/// What tests ask of a program they started, in the words of Foundation's `Process` (whose
/// `run()` they cannot use: see ``ChildProcess``).
extension ChildProcess {
    public enum TerminationReason: Sendable { case exit, uncaughtSignal }

    /// Runs `command` (a path, then its arguments) to its end: its exit status and standard output
    /// (with its standard error when `mergingErrors`; discarded otherwise).
    public static func run(_ command: [String], mergingErrors: Bool = false) throws -> (status: Int32, output: String) {
        let output = Pipe()
        let errors =
            mergingErrors ? dup(output.fileHandleForWriting.fileDescriptor) : open("/dev/null", O_WRONLY | O_CLOEXEC)
        let program: ChildProcess
        do {
            // Our copies of the write ends go before reading: the output ends when the child's do.
            defer {
                close(errors)
                try? output.fileHandleForWriting.close()
            }
            program = try ChildProcess(
                command[0],
                Array(command.dropFirst()),
                standardOutput: output.fileHandleForWriting.fileDescriptor,
                standardError: errors
            )
        }
        let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        return (program.terminationStatus, text)
    }

    public var processIdentifier: Int32 { self.pid }
    public func waitUntilExit() { self.wait() }
    public func terminate() { self.signal(SIGTERM) }

    /// Its exit code, or the signal that ended it (as Foundation's `Process` says).
    public var terminationStatus: Int32 {
        switch self.wait() {
        case .exited(let code): code
        case .signalled(let signal): signal
        }
    }

    public var terminationReason: TerminationReason {
        if case .signalled = self.wait() { return .uncaughtSignal }
        return .exit
    }
}

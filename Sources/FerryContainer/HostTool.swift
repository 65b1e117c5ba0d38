import FerryPosix
import Foundation

/// Runs a host tool (`ip`, `tar`) to its end: its standard output, or its standard error as the
/// reason it failed. Input is fed from another thread, so a tool that writes while it reads
/// cannot block on a full pipe.
enum HostTool {
    /// - Returns: the exit status and standard output and error.
    static func run(
        _ path: String,
        _ arguments: [String],
        input: [UInt8]? = nil
    ) throws -> (status: Int32, output: [UInt8], errors: String) {
        let output = Pipe()
        let errors = Pipe()
        let feed = Pipe()
        let nothing = open("/dev/null", O_RDONLY | O_CLOEXEC)
        let process: ChildProcess
        do {
            // Our copies of the child's ends go at once: the pipes end when the child's do.
            defer {
                close(nothing)
                try? output.fileHandleForWriting.close()
                try? errors.fileHandleForWriting.close()
                try? feed.fileHandleForReading.close()
            }
            process = try ChildProcess(
                path,
                arguments,
                standardInput: input == nil ? nothing : feed.fileHandleForReading.fileDescriptor,
                standardOutput: output.fileHandleForWriting.fileDescriptor,
                standardError: errors.fileHandleForWriting.fileDescriptor
            )
        }
        if input == nil { try? feed.fileHandleForWriting.close() }
        if let input {
            let writer = feed.fileHandleForWriting
            Thread.detachNewThread {
                writer.write(Data(input))
                try? writer.close()
            }
        }
        let bytes = output.fileHandleForReading.readDataToEndOfFile()
        let message = errors.fileHandleForReading.readDataToEndOfFile()
        let status = process.wait().code
        let text = String(decoding: message, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        return (status, [UInt8](bytes), text)
    }
}

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
        let process = Process()
        process.executableURL = URL(fileURLWithPath: path)
        process.arguments = arguments
        let output = Pipe()
        let errors = Pipe()
        let feed = Pipe()
        process.standardOutput = output
        process.standardError = errors
        process.standardInput = input == nil ? FileHandle.nullDevice : feed
        try process.run()
        if let input {
            let writer = feed.fileHandleForWriting
            Thread.detachNewThread {
                writer.write(Data(input))
                try? writer.close()
            }
        }
        let bytes = output.fileHandleForReading.readDataToEndOfFile()
        let message = errors.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        let text = String(decoding: message, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        return (process.terminationStatus, [UInt8](bytes), text)
    }
}

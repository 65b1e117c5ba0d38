import Foundation

/// A container's writable layer as bytes, to move it with the container: GNU tar, which keeps
/// overlayfs' whiteouts (character devices 0:0), its `trusted.overlay.*` attributes, owners by
/// number and modes, as the kernel wrote them.
enum UpperLayer {
    static func pack(_ directory: String) throws -> [UInt8] {
        try self.tar(["-C", directory, "--xattrs", "--xattrs-include=trusted.*", "--numeric-owner", "-cf", "-", "."])
    }

    static func unpack(_ archive: [UInt8], into directory: String) throws {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        _ = try self.tar(
            ["-C", directory, "--xattrs", "--xattrs-include=trusted.*", "--numeric-owner", "-xpf", "-"],
            input: archive
        )
    }

    private static func tar(_ arguments: [String], input: [UInt8]? = nil) throws -> [UInt8] {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/tar")
        process.arguments = arguments
        let output = Pipe()
        let errors = Pipe()
        let feed = Pipe()
        process.standardOutput = output
        process.standardError = errors
        process.standardInput = input == nil ? FileHandle.nullDevice : feed
        try process.run()
        if let input {
            // Written from another thread: tar's output must be read meanwhile.
            let writer = feed.fileHandleForWriting
            Thread.detachNewThread {
                writer.write(Data(input))
                try? writer.close()
            }
        }
        let bytes = output.fileHandleForReading.readDataToEndOfFile()
        let message = errors.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            let text = String(decoding: message, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
            throw ContainerError("tar \(arguments.joined(separator: " ")) failed: \(text)")
        }
        return [UInt8](bytes)
    }
}

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
        let result = try HostTool.run("/bin/tar", arguments, input: input)
        guard result.status == 0 else {
            throw ContainerError("tar \(arguments.joined(separator: " ")) failed: \(result.errors)")
        }
        return result.output
    }
}

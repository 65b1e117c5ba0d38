import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// A directory tree as bytes, to move a process's writable layer by value: regular files, their
/// modes and contents, directories, symbolic links and the layer's whiteouts, by relative path.
struct PackedTree: Codable, Sendable, Equatable {
    struct Entry: Codable, Sendable, Equatable {
        enum Kind: String, Codable, Sendable { case file, directory, symlink }
        var path: String
        var kind: Kind
        var mode: UInt32
        var contents: Data
    }

    var entries: [Entry] = []

    /// The most a layer may hold to move: what does not fit refuses the move.
    static let maxBytes = 64 << 20

    /// Reads the tree under `root`.
    static func pack(_ root: String) throws -> PackedTree {
        var tree = PackedTree()
        var total = 0
        guard let walker = FileManager.default.enumerator(atPath: root) else { return tree }
        while let relative = walker.nextObject() as? String {
            let path = root + "/" + relative
            var info = stat()
            guard lstat(path, &info) == 0 else { continue }
            let mode = UInt32(info.st_mode) & 0o7777
            switch info.st_mode & S_IFMT {
            case S_IFDIR:
                tree.entries.append(Entry(path: relative, kind: .directory, mode: mode, contents: Data()))
            case S_IFLNK:
                let target = try FileManager.default.destinationOfSymbolicLink(atPath: path)
                tree.entries.append(Entry(path: relative, kind: .symlink, mode: mode, contents: Data(target.utf8)))
            case S_IFREG:
                total += Int(info.st_size)
                guard total <= Self.maxBytes else {
                    throw ProcessError(
                        "its writable layer \(root) holds more than \(Self.maxBytes >> 20) MiB, more than a move carries"
                    )
                }
                let contents = FileManager.default.contents(atPath: path) ?? Data()
                tree.entries.append(Entry(path: relative, kind: .file, mode: mode, contents: contents))
            default:
                continue
            }
        }
        return tree
    }

    /// Writes the tree under `root` (which it creates), refusing paths that would leave it.
    func unpack(into root: String) throws {
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        for entry in self.entries {
            let parts = entry.path.split(separator: "/")
            guard !entry.path.hasPrefix("/"), !parts.contains(".."), !parts.isEmpty else {
                throw ProcessError("a moved layer names the path '\(entry.path)', which leaves it")
            }
            let path = root + "/" + entry.path
            switch entry.kind {
            case .directory:
                try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
            case .symlink:
                try FileManager.default.createSymbolicLink(
                    atPath: path,
                    withDestinationPath: String(decoding: entry.contents, as: UTF8.self)
                )
            case .file:
                guard FileManager.default.createFile(atPath: path, contents: entry.contents) else {
                    throw ProcessError("cannot write \(path) of a moved layer")
                }
            }
            if entry.kind != .symlink { chmod(path, mode_t(entry.mode)) }
        }
    }

    var byteCount: Int { self.entries.reduce(0) { $0 + $1.contents.count + $1.path.utf8.count } }
}

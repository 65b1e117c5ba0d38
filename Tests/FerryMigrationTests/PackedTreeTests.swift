import Foundation
import Testing

@testable import FerryMigration

/// A writable layer moved by value.
@Suite struct PackedTreeTests {
    @Test func aTreeOfFilesDirectoriesLinksAndWhiteoutsComesBackTheSame() throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("ferry-tree-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: root) }
        try FileManager.default.createDirectory(atPath: root + "/a/b", withIntermediateDirectories: true)
        try "hello".write(toFile: root + "/a/b/file.txt", atomically: true, encoding: .utf8)
        FileManager.default.createFile(atPath: root + "/.wh.gone", contents: Data())
        try FileManager.default.createSymbolicLink(atPath: root + "/link", withDestinationPath: "a/b/file.txt")
        let tree = try PackedTree.pack(root)
        let copy = root + "-copy"
        defer { try? FileManager.default.removeItem(atPath: copy) }
        try JSONDecoder().decode(PackedTree.self, from: JSONEncoder().encode(tree)).unpack(into: copy)
        #expect(try String(contentsOfFile: copy + "/a/b/file.txt", encoding: .utf8) == "hello")
        #expect(FileManager.default.fileExists(atPath: copy + "/.wh.gone"))
        #expect(try FileManager.default.destinationOfSymbolicLink(atPath: copy + "/link") == "a/b/file.txt")
    }

    @Test func aTreeThatNamesAPathOutsideItIsRefused() throws {
        let tree = PackedTree(entries: [.init(path: "../escape", kind: .file, mode: 0o644, contents: Data("x".utf8))])
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("ferry-tree-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: root) }
        #expect(throws: ProcessError.self) { try tree.unpack(into: root) }
        #expect(!FileManager.default.fileExists(atPath: root + "/../escape"))
    }
}

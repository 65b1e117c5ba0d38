import Foundation

/// Data sets a node holds for its guests (`ferry data load`): private to the node, read by a
/// guest only through `ferry.data_read`, in batches, and never sent anywhere by the node. A
/// guest is bound to them by type: after a move it reads the new node's data set of that name.
/// Each is one file, `DIR/NAME.bin`, replaced whole by a load.
public final class NodeDataSets: Sendable {
    let directory: String
    /// A data set travels in one node-protocol frame.
    public static let maxBytes = 32 << 20

    init(directory: String) throws {
        self.directory = directory
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    }

    /// Stores `bytes` as data set `name`, replacing any of that name; its size.
    public func load(_ name: String, _ bytes: Data) throws -> Int {
        try Self.validate(name)
        guard bytes.count <= Self.maxBytes else {
            throw ProcessError("a data set of \(bytes.count) bytes is over the \(Self.maxBytes) a node takes")
        }
        try bytes.write(to: URL(fileURLWithPath: self.path(name)), options: .atomic)
        return bytes.count
    }

    /// Up to `capacity` bytes of `name` from `offset`; empty past its end, nil when there is none.
    func read(_ name: String, offset: Int, capacity: Int) -> [UInt8]? {
        guard (try? Self.validate(name)) != nil else { return nil }
        let fd = open(self.path(name), O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var bytes = [UInt8](repeating: 0, count: capacity)
        let count = bytes.withUnsafeMutableBytes { pread(fd, $0.baseAddress, capacity, off_t(offset)) }
        guard count >= 0 else { return nil }
        bytes.removeLast(capacity - count)
        return bytes
    }

    /// The node's data sets and their sizes.
    public func list() -> [String: Int] {
        let files = (try? FileManager.default.contentsOfDirectory(atPath: self.directory)) ?? []
        var sizes: [String: Int] = [:]
        for file in files where file.hasSuffix(".bin") {
            let attributes = try? FileManager.default.attributesOfItem(atPath: self.directory + "/" + file)
            sizes[String(file.dropLast(4))] = (attributes?[.size] as? Int) ?? 0
        }
        return sizes
    }

    private func path(_ name: String) -> String { "\(self.directory)/\(name).bin" }

    /// Names like process names: they become file names.
    static func validate(_ name: String) throws {
        do {
            try ProcessSpec.validate(name: name)
        } catch {
            throw ProcessError(
                "'\(name.prefix(70))' is not a data set name: use 1 to 64 letters, digits, '.', '_' or '-'"
            )
        }
    }
}

import FerryGuest
import Foundation

/// A process's directories on a node. Each `--dir HOST[:GUEST]` is seen through a layered view:
/// a writable layer of the process's own (in the node's data directory) over HOST, which stays
/// read-only. The writable layer is unattached — it moves with the process, by value — and HOST,
/// like every `--lower` layer, is fastened to its machine: the process reaches it by identifier
/// (its path) wherever it goes.
enum ProcessDirectories {
    /// The views for `spec`, with writable layers under `directory/layers`.
    static func views(_ spec: ProcessSpec, in directory: String) throws -> [GuestDirectory] {
        var views: [GuestDirectory] = []
        for (index, text) in spec.directories.enumerated() {
            let given = try GuestDirectory(parsing: text)
            let host = given.upper ?? given.lowers[0]
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: host, isDirectory: &isDirectory), isDirectory.boolValue else {
                throw GuestError.badDirectory(spec: text, reason: "\(host) is not a directory on this node")
            }
            var upper: String?
            if given.upper != nil {
                upper = Self.upper(index, in: directory)
                try FileManager.default.createDirectory(atPath: upper!, withIntermediateDirectories: true)
            }
            views.append(GuestDirectory(guestPath: given.guestPath, upper: upper, lowers: [host]))
        }
        for lower in spec.lowers {
            let parts = lower.split(separator: "=", maxSplits: 1).map(String.init)
            guard parts.count == 2, !parts[1].isEmpty else {
                throw GuestError.badDirectory(spec: lower, reason: "--lower takes GUEST=HOST")
            }
            guard let index = views.firstIndex(where: { $0.guestPath == parts[0] }) else {
                throw GuestError.badDirectory(spec: lower, reason: "no --dir is seen at \(parts[0])")
            }
            views[index].lowers.append(parts[1])
        }
        return views
    }

    /// Where a process's `index`th writable layer is.
    static func upper(_ index: Int, in directory: String) -> String { "\(directory)/layers/\(index)" }
}

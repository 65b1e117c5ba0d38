import Crypto
import FerryEndpoints
import FerryGuest
import Foundation

/// A read-only layer of a moving process, by identifier: its path, what it holds, and where to
/// copy it from when the target cannot reach the same tree at that path.
struct LowerLayer: Codable, Sendable, Equatable {
    var path: String
    /// Names, sizes and modification times under it, hashed: a tree at the same path on the
    /// target with another fingerprint is another tree.
    var fingerprint: String
    var origin: LayerOrigin
}

/// A node that lends a layer, and the id it lends it under.
struct LayerOrigin: Codable, Sendable, Equatable {
    var node: ServiceEndpoint
    var id: String
}

/// The fastened resources of the seed's table: a process's read-only layers stay where they are.
/// A target that sees the same tree at the same path uses it there; one that does not (another
/// machine, another mount namespace) makes an empty copy and fills it from the node that lent
/// it the first time the process touches the directory.
extension ProcessHost {
    /// Where copies of layers live: `WORK/layers/ID/tree`, with `origin.json` until filled.
    var layerCache: String { self.workDirectory + "/layers" }

    /// The process's read-only layers, as an offer names them.
    func describeLowers(of process: HostedProcess) -> [LowerLayer] {
        process.directories.flatMap(\.lowers).map { path in
            if let origin = self.unfilledOrigin(of: path) {
                // Never used here: pass on where it comes from, not the empty copy.
                return LowerLayer(path: path, fingerprint: origin.fingerprint, origin: origin.origin)
            }
            let id = String(UInt64.random(in: 1...UInt64.max), radix: 16)
            self.lentLayers.withLockedValue { $0[id] = path }
            return LowerLayer(
                path: path,
                fingerprint: Self.fingerprint(of: path) ?? "",
                origin: LayerOrigin(node: self.configuration.endpoint, id: id)
            )
        }
    }

    /// The files of a layer this node lends, as a ``PackedTree`` in JSON.
    public func lentLayer(_ id: String) throws -> Data {
        guard let path = self.lentLayers.withLockedValue({ $0[id] }) else {
            throw ProcessError("this node lends no layer '\(id)'")
        }
        return try JSONEncoder().encode(try PackedTree.pack(path))
    }

    /// `spec` as it runs here: each read-only layer this node cannot see as the source did is
    /// replaced by a copy to be filled on first use.
    func resolveLowers(_ spec: ProcessSpec, _ lowers: [LowerLayer]) throws -> ProcessSpec {
        var replaced: [String: String] = [:]
        for lower in lowers where Self.fingerprint(of: lower.path) != lower.fingerprint {
            let entry = "\(self.layerCache)/\(lower.origin.id)"
            if !FileManager.default.fileExists(atPath: entry + "/tree") {
                try FileManager.default.createDirectory(atPath: entry + "/tree", withIntermediateDirectories: true)
                let record = PendingLayer(origin: lower.origin, fingerprint: lower.fingerprint)
                try JSONEncoder().encode(record).write(to: URL(fileURLWithPath: entry + "/origin.json"))
            }
            replaced[lower.path] = entry + "/tree"
        }
        guard !replaced.isEmpty else { return spec }
        var spec = spec
        spec.directories = try spec.directories.map { text in
            let view = try GuestDirectory(parsing: text)
            let host = view.upper ?? view.lowers[0]
            guard let copy = replaced[host] else { return text }
            return "\(copy):\(view.guestPath)" + (view.upper == nil ? ":ro" : "")
        }
        spec.lowers = spec.lowers.map { text in
            let parts = text.split(separator: "=", maxSplits: 1).map(String.init)
            guard parts.count == 2, let copy = replaced[parts[1]] else { return text }
            return "\(parts[0])=\(copy)"
        }
        return spec
    }

    /// The hook that fills a copied layer on the process's first use of `view`, if it has one.
    func firstUse(of view: GuestDirectory) -> GuestDirectoryHook? {
        let pending = view.lowers.filter { self.unfilledOrigin(of: $0) != nil }
        guard !pending.isEmpty else { return nil }
        return GuestDirectoryHook { [weak self] in
            for tree in pending { try self?.fill(tree) }
        }
    }

    private struct PendingLayer: Codable {
        var origin: LayerOrigin
        var fingerprint: String
    }

    private func unfilledOrigin(of path: String) -> PendingLayer? {
        guard path.hasPrefix(self.layerCache + "/"), path.hasSuffix("/tree") else { return nil }
        let record = String(path.dropLast("tree".count)) + "origin.json"
        return FileManager.default.contents(atPath: record).flatMap {
            try? JSONDecoder().decode(PendingLayer.self, from: $0)
        }
    }

    /// Copies a layer from the node that lent it into `tree`.
    private func fill(_ tree: String) throws {
        guard let pending = self.unfilledOrigin(of: tree) else { return }
        let started = ContinuousClock.now
        let data = try Blocking.wait {
            let client = try await NodeClient.connect(to: pending.origin.node)
            defer { Task { await client.close() } }
            guard case .layer(let data) = try await client.request(.layer(id: pending.origin.id), timeout: .seconds(60))
            else {
                throw ProcessError("the node at \(pending.origin.node) sent no layer")
            }
            return data
        }
        try JSONDecoder().decode(PackedTree.self, from: data).unpack(into: tree)
        try FileManager.default.removeItem(atPath: String(tree.dropLast("tree".count)) + "origin.json")
        self.logger.info(
            "copied a read-only layer (\(data.count) bytes) from \(pending.origin.node) on its first use, in \(ContinuousClock.now - started)"
        )
    }

    /// A tree's names, sizes and modification times, hashed; nil when there is no directory.
    static func fingerprint(of path: String) -> String? {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), isDirectory.boolValue else {
            return nil
        }
        var lines: [String] = []
        if let walker = FileManager.default.enumerator(atPath: path) {
            while let relative = walker.nextObject() as? String {
                var info = stat()
                guard lstat(path + "/" + relative, &info) == 0 else { continue }
                lines.append("\(relative)\t\(info.st_size)\t\(info.st_mtim.tv_sec)")
            }
        }
        return GuestValues.hex(Array(SHA256.hash(data: Data(lines.sorted().joined(separator: "\n").utf8)).prefix(12)))
    }
}

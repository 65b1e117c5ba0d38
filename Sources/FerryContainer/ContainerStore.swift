import Foundation

/// What `ferry container ps|logs|stop|rm` know of a container: one directory per container
/// under the store's root, holding `state.json`, the log of a detached container, and the
/// writable upper layer.
public struct ContainerStore: Sendable {
    public let root: String

    public init(root: String) { self.root = root }

    /// `/run/ferry/containers` for root (crun's is /run/crun); for another user their runtime
    /// directory, as rootless crun and podman do.
    public static func defaultRoot() -> String {
        if geteuid() == 0 { return "/run/ferry/containers" }
        if let runtime = getenv("XDG_RUNTIME_DIR").map({ String(cString: $0) }), !runtime.isEmpty {
            return runtime + "/ferry/containers"
        }
        return "/tmp/ferry-\(geteuid())/containers"
    }

    public func directory(of id: String) -> String { self.root + "/" + id }
    public func logPath(of id: String) -> String { self.directory(of: id) + "/log" }

    /// Makes the container's directory (`run --detach` makes it first, for the log); an id in
    /// use is refused.
    func create(id: String) throws -> String {
        try FileManager.default.createDirectory(atPath: self.root, withIntermediateDirectories: true)
        let path = self.directory(of: id)
        // Modes set explicitly: a umask (even one another thread holds for a moment) must not
        // make the directory one its owner cannot enter.
        guard mkdir(path, 0o700) == 0, chmod(path, 0o700) == 0 else {
            let error = errno
            let recorded = FileManager.default.fileExists(atPath: path + "/state.json")
            if error == EEXIST && !recorded { return path }
            if error == EEXIST {
                throw ContainerError("a container named \(id) exists already; remove it with ferry container rm \(id)")
            }
            throw ContainerError("cannot make \(path): \(String(cString: strerror(error)))")
        }
        return path
    }

    public func save(_ state: ContainerState) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        encoder.dateEncodingStrategy = .iso8601
        let path = self.directory(of: state.id) + "/state.json"
        try encoder.encode(state).write(to: URL(fileURLWithPath: path), options: .atomic)
    }

    /// The container `id` (a unique prefix of it is enough, as with docker and podman).
    public func load(_ id: String) throws -> ContainerState {
        let all = self.list()
        if let exact = all.first(where: { $0.id == id }) { return exact }
        let matches = all.filter { $0.id.hasPrefix(id) }
        guard matches.count == 1, !id.isEmpty else {
            throw ContainerError(
                matches.isEmpty
                    ? "no container \(id) in \(self.root)"
                    : "\(id) names \(matches.count) containers; give more of the id"
            )
        }
        return matches[0]
    }

    /// Every container in the store, the oldest first.
    public func list() -> [ContainerState] {
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .iso8601
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: self.root)) ?? []
        return entries.compactMap { entry in
            guard let data = FileManager.default.contents(atPath: self.directory(of: entry) + "/state.json") else {
                return nil
            }
            return try? decoder.decode(ContainerState.self, from: data)
        }
        .sorted { $0.created < $1.created }
    }

    public func remove(_ id: String) throws {
        try FileManager.default.removeItem(atPath: self.directory(of: id))
    }
}

/// One container's record in the store.
public struct ContainerState: Codable, Sendable {
    public enum Status: String, Codable, Sendable { case created, running, exited }

    public var id: String
    public var status: Status
    public var command: [String]
    public var rootfs: String
    public var created: Date
    /// The program's pid as the host sees it (PID 1 inside).
    public var pid: Int32?
    /// The `ferry` process that started it and waits for it.
    public var monitorPid: Int32
    public var memoryLimit: Int64?
    public var pidsLimit: Int64?
    public var cpus: Double?
    public var cgroups: [String]
    public var published: [String]
    public var address: String?
    public var exitCode: Int32?
    public var reason: String?

    /// `running` only while its monitor lives: a monitor killed with kill -9 took its container
    /// with it (the container's parent-death signal), whatever the file last said.
    public var liveStatus: String {
        if self.status == .running, !Self.isAlive(self.monitorPid) { return "dead" }
        return self.status.rawValue
    }

    /// Whether `pid` runs: a zombie (killed, not yet reaped by whoever adopted it) does not.
    static func isAlive(_ pid: pid_t) -> Bool {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
            let close = stat.lastIndex(of: ")")
        else { return false }
        return !stat[close...].hasPrefix(") Z") && !stat[close...].hasPrefix(") X")
    }
}

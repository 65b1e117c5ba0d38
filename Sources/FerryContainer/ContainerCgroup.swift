import Foundation

/// The cgroups of one container: made before its program starts, its limits written, its
/// processes placed there by the parent before the child may go on, read afterwards for why the
/// container ended (OOM kills, forks refused at the pids limit) and removed at the end.
/// cgroup v1 (one hierarchy per controller, as this machine has) and v2 (the unified one) alike.
public final class ContainerCgroup: Sendable {
    public enum Version: Int, Sendable {
        case v1 = 1
        case v2 = 2
    }

    public let version: Version
    /// Each cgroup's directory, by controller (v2: one directory under the key "unified").
    public let paths: [String: String]

    init(version: Version, paths: [String: String]) {
        self.version = version
        self.paths = paths
    }

    static let root = "/sys/fs/cgroup"
    /// Apart from the nodes' `ferry/NODE.PID` cgroups (`ferry node --cpus`).
    static let parentName = "ferry-containers"
    static let v1Controllers = ["memory", "pids", "cpu", "freezer"]

    /// Which cgroup version the machine mounts, or nil when /sys/fs/cgroup holds neither.
    public static func detectVersion() -> Version? {
        if FileManager.default.fileExists(atPath: root + "/cgroup.controllers") { return .v2 }
        if FileManager.default.fileExists(atPath: root + "/memory/memory.limit_in_bytes") { return .v1 }
        return nil
    }

    /// Makes the cgroups `ferry-containers/NAME` and writes `resources` into them. Cgroups that earlier
    /// containers left when their monitor was killed (empty now, their name's pid gone) are
    /// removed first.
    ///
    /// - Throws: ``ContainerError`` naming the file that could not be written and why.
    public static func create(name: String, resources: ContainerSpec.Resources) throws -> ContainerCgroup {
        guard let version = self.detectVersion() else {
            throw ContainerError(
                "cgroups are not mounted at /sys/fs/cgroup (neither v1 nor v2), so limits cannot be set"
            )
        }
        var paths: [String: String] = [:]
        do {
            switch version {
            case .v1:
                var controllers = self.v1Controllers
                if resources.cpus != nil { controllers.append("cpuset") }
                for controller in controllers {
                    let parent = "\(root)/\(controller)/\(Self.parentName)"
                    guard FileManager.default.fileExists(atPath: "\(root)/\(controller)") else { continue }
                    self.removeStale(in: parent)
                    try self.makeDirectory(parent)
                    if controller == "cpuset" { try self.inheritCpuset(parent) }
                    try self.makeDirectory(parent + "/" + name)
                    paths[controller] = parent + "/" + name
                }
            case .v2:
                let parent = root + "/" + Self.parentName
                self.removeStale(in: parent)
                try self.makeDirectory(parent)
                let available = (try? String(contentsOfFile: root + "/cgroup.controllers", encoding: .utf8)) ?? ""
                let wanted = ["memory", "pids", "cpu", "cpuset"].filter {
                    available.split(separator: " ").contains(Substring($0))
                }
                let enable = wanted.map { "+" + $0 }.joined(separator: " ")
                try self.write(enable, to: root + "/cgroup.subtree_control")
                try self.write(enable, to: parent + "/cgroup.subtree_control")
                try self.makeDirectory(parent + "/" + name)
                paths["unified"] = parent + "/" + name
            }
            let cgroup = ContainerCgroup(version: version, paths: paths)
            do {
                try cgroup.apply(resources)
            } catch {
                cgroup.remove()
                throw error
            }
            return cgroup
        } catch {
            for path in paths.values { rmdir(path) }
            throw error
        }
    }

    private func apply(_ resources: ContainerSpec.Resources) throws {
        switch self.version {
        case .v1:
            if let memory = resources.memory, let path = self.paths["memory"] {
                try Self.write(String(memory), to: path + "/memory.limit_in_bytes")
                // Without swap accounting the file is absent: the memory limit alone then holds.
                let swap = resources.memoryAndSwap ?? memory
                if FileManager.default.fileExists(atPath: path + "/memory.memsw.limit_in_bytes") {
                    try Self.write(String(swap), to: path + "/memory.memsw.limit_in_bytes")
                }
            }
            if let pids = resources.pids, let path = self.paths["pids"] {
                try Self.write(pids < 0 ? "max" : String(pids), to: path + "/pids.max")
            }
            if let path = self.paths["cpu"] {
                if let shares = resources.cpuShares { try Self.write(String(shares), to: path + "/cpu.shares") }
                if let period = resources.cpuPeriod { try Self.write(String(period), to: path + "/cpu.cfs_period_us") }
                if let quota = resources.cpuQuota { try Self.write(String(quota), to: path + "/cpu.cfs_quota_us") }
            }
            if let cpus = resources.cpus, let path = self.paths["cpuset"] {
                try Self.write(cpus, to: path + "/cpuset.cpus")
            }
        case .v2:
            guard let path = self.paths["unified"] else { return }
            if let memory = resources.memory {
                try Self.write(String(memory), to: path + "/memory.max")
                let swap = max(0, (resources.memoryAndSwap ?? memory) - memory)
                if FileManager.default.fileExists(atPath: path + "/memory.swap.max") {
                    try Self.write(String(swap), to: path + "/memory.swap.max")
                }
            }
            if let pids = resources.pids { try Self.write(pids < 0 ? "max" : String(pids), to: path + "/pids.max") }
            if let shares = resources.cpuShares {
                // crun's and runc's conversion of shares (2...262144) to a weight (1...10000).
                try Self.write(String(1 + ((shares - 2) * 9999) / 262_142), to: path + "/cpu.weight")
            }
            if resources.cpuQuota != nil || resources.cpuPeriod != nil {
                let quota = resources.cpuQuota.map { $0 < 0 ? "max" : String($0) } ?? "max"
                try Self.write("\(quota) \(resources.cpuPeriod ?? 100_000)", to: path + "/cpu.max")
            }
            if let cpus = resources.cpus { try Self.write(cpus, to: path + "/cpuset.cpus") }
        }
    }

    /// Places process `pid` (with its threads) in every one of the container's cgroups.
    public func add(pid: pid_t) throws {
        for path in self.paths.values { try Self.write(String(pid), to: path + "/cgroup.procs") }
    }

    /// How many times the kernel's OOM killer killed a process of this cgroup.
    public var oomKills: Int {
        switch self.version {
        case .v1: self.paths["memory"].flatMap { Self.counter("oom_kill", in: $0 + "/memory.oom_control") } ?? 0
        case .v2: self.paths["unified"].flatMap { Self.counter("oom_kill", in: $0 + "/memory.events") } ?? 0
        }
    }

    /// How many forks the pids limit refused.
    public var pidsLimitHits: Int {
        let path = self.version == .v1 ? self.paths["pids"] : self.paths["unified"]
        return path.flatMap { Self.counter("max", in: $0 + "/pids.events") } ?? 0
    }

    /// Bytes of memory the container uses now (page cache included, as the limit counts it).
    public var memoryUsage: Int64? {
        switch self.version {
        case .v1: self.paths["memory"].flatMap { Self.number(in: $0 + "/memory.usage_in_bytes") }
        case .v2: self.paths["unified"].flatMap { Self.number(in: $0 + "/memory.current") }
        }
    }

    /// The processes in the container now.
    public var processes: [pid_t] {
        let path = self.version == .v1 ? self.paths["pids"] ?? self.paths["memory"] : self.paths["unified"]
        guard let path, let text = try? String(contentsOfFile: path + "/cgroup.procs", encoding: .utf8) else {
            return []
        }
        return text.split(separator: "\n").compactMap { pid_t($0) }
    }

    /// Stops every process of the container where it stands (the freezer), so that what is
    /// copied from it afterwards is consistent; ``thaw()`` lets them run again.
    public func freeze() throws {
        switch self.version {
        case .v1:
            guard let path = self.paths["freezer"] else { throw ContainerError("the freezer cgroup is not mounted") }
            try Self.write("FROZEN", to: path + "/freezer.state")
        case .v2:
            guard let path = self.paths["unified"] else { return }
            try Self.write("1", to: path + "/cgroup.freeze")
        }
    }

    public func thaw() throws {
        switch self.version {
        case .v1:
            guard let path = self.paths["freezer"] else { return }
            try Self.write("THAWED", to: path + "/freezer.state")
        case .v2:
            guard let path = self.paths["unified"] else { return }
            try Self.write("0", to: path + "/cgroup.freeze")
        }
    }

    /// Kills what is left in the cgroups (a container without a PID namespace leaves its
    /// children behind when its program ends), waits until they are gone, and removes the cgroups.
    public func remove() {
        for _ in 0..<1000 {
            let left = self.processes
            if left.isEmpty { break }
            try? self.thaw()
            for pid in left { kill(pid, SIGKILL) }
            // The kernel takes a moment to tear a killed process down; nothing signals that here.
            usleep(1000)
        }
        for path in self.paths.values {
            for _ in 0..<1000 {
                if rmdir(path) == 0 || errno == ENOENT { break }
                usleep(1000)
            }
        }
    }

    /// Removes `NAME.PID` cgroups whose process is gone: the containers' and the nodes' (`ferry
    /// node --cpus`) alike. Processes still in one belonged to a container whose monitor or node
    /// was killed (`kill -9` in the middle of a move leaves it frozen): they are thawed and killed,
    /// and their cgroups go at the next call once the kernel has torn them down.
    public static func removeStale(in parent: String) {
        for entry in (try? FileManager.default.contentsOfDirectory(atPath: parent)) ?? [] {
            guard let dot = entry.lastIndex(of: "."), let pid = pid_t(entry[entry.index(after: dot)...]),
                kill(pid, 0) != 0, errno == ESRCH
            else { continue }
            let path = parent + "/" + entry
            let left = ((try? String(contentsOfFile: path + "/cgroup.procs", encoding: .utf8)) ?? "")
                .split(separator: "\n").compactMap { pid_t($0) }
            if !left.isEmpty {
                for orphan in left { kill(orphan, SIGKILL) }
                // Only the freezer hierarchy has the file; a frozen process dies once thawed.
                try? self.write("THAWED", to: path + "/freezer.state")
            }
            // Empty children first (a node's `guests`): a cgroup with children cannot go.
            for child in (try? FileManager.default.contentsOfDirectory(atPath: path)) ?? [] {
                rmdir(path + "/" + child)
            }
            rmdir(path)
        }
    }

    /// Removes the stale cgroups of containers in every hierarchy (see ``removeStale(in:)``).
    public static func removeStaleContainers() {
        switch self.detectVersion() {
        case .v1:
            for controller in self.v1Controllers + ["cpuset"] {
                self.removeStale(in: "\(root)/\(controller)/\(Self.parentName)")
            }
        case .v2: self.removeStale(in: root + "/" + Self.parentName)
        case nil: return
        }
    }

    /// A v1 cpuset cgroup starts with no CPUs and no memory nodes: copy the parent's.
    private static func inheritCpuset(_ path: String) throws {
        let parent = (path as NSString).deletingLastPathComponent
        for file in ["cpuset.cpus", "cpuset.mems"] {
            let mine = (try? String(contentsOfFile: path + "/" + file, encoding: .utf8)) ?? ""
            guard mine.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty else { continue }
            let theirs = (try? String(contentsOfFile: parent + "/" + file, encoding: .utf8)) ?? ""
            try self.write(theirs.trimmingCharacters(in: .whitespacesAndNewlines), to: path + "/" + file)
        }
    }

    private static func makeDirectory(_ path: String) throws {
        if mkdir(path, 0o755) != 0 && errno != EEXIST {
            throw ContainerError(
                "cannot make the cgroup \(path): \(String(cString: strerror(errno))); run as root, or in a cgroup delegated to this user"
            )
        }
    }

    static func write(_ value: String, to file: String) throws {
        let fd = open(file, O_WRONLY | O_CLOEXEC)
        guard fd >= 0 else { throw ContainerError("cannot open \(file): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        let written = value.withCString { Foundation.write(fd, $0, strlen($0)) }
        guard written >= 0 else {
            throw ContainerError("cannot write '\(value)' to \(file): \(String(cString: strerror(errno)))")
        }
    }

    /// The number after `key` in a `key value` per line file (memory.events, pids.events).
    private static func counter(_ key: String, in file: String) -> Int? {
        guard let text = try? String(contentsOfFile: file, encoding: .utf8) else { return nil }
        for line in text.split(separator: "\n") {
            let fields = line.split(separator: " ")
            if fields.count == 2, fields[0] == key { return Int(fields[1]) }
        }
        return nil
    }

    private static func number(in file: String) -> Int64? {
        (try? String(contentsOfFile: file, encoding: .utf8)).flatMap {
            Int64($0.trimmingCharacters(in: .whitespacesAndNewlines))
        }
    }
}

/// A container could not be made, started or managed: what failed, with which input, and why.
public struct ContainerError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

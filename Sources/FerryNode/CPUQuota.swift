import CFerryLinux
import FerryContainer
import Foundation

/// `ferry node --cpus N`: puts this process in a cgroup of its own and the threads that run its
/// guests in a child of it, `guests`, whose CPU quota is N CPUs, so that nodes on one machine
/// stand for machines of that size — work that moves to another node finishes sooner there, as
/// it would on an idler machine. The node's own threads (its claims' renewals, its answers to
/// peers, moves) are outside the quota, as a machine's kernel is outside its programs' budget:
/// guests that spin through the whole quota cannot make the node lose its claims. cgroup v2
/// (`cpu.max`, the child threaded) where the unified hierarchy has the cpu controller, else v1
/// (`cpu.cfs_quota_us`).
public struct CPUQuota: Sendable {
    /// The node's cgroup's directory.
    public let path: String
    /// The hierarchy it is in.
    let root: String
    public let cpus: Double
    /// The CFS period, in microseconds: the quota is `cpus` times it.
    static let period = 100_000

    /// Where a cgroup hierarchy with the cpu controller is mounted, and its version.
    static func hierarchy() -> (root: String, version: Int)? {
        if FileManager.default.fileExists(atPath: "/sys/fs/cgroup/cpu/cpu.cfs_quota_us") {
            return ("/sys/fs/cgroup/cpu", 1)
        }
        if let controllers = try? String(contentsOfFile: "/sys/fs/cgroup/cgroup.controllers", encoding: .utf8),
            controllers.split(separator: " ").contains(where: {
                $0.trimmingCharacters(in: .whitespacesAndNewlines) == "cpu"
            })
        {
            return ("/sys/fs/cgroup", 2)
        }
        return nil
    }

    /// The guests' cgroup, under the quota.
    public var guestsPath: String { Self.guests(of: self.path) }
    let version: Int

    /// Makes the node's cgroup `ferry/NODE.PID` (two clusters on one machine may both have a
    /// node of that name) and its child `guests` with the quota, and moves this process, all its
    /// threads, into the node's; guest threads join `guests` with ``confineCallingThread()``.
    /// Cgroups left by nodes killed earlier, empty now, are removed first.
    ///
    /// - Throws: ``CPUQuotaError`` saying which step failed and why.
    public static func apply(cpus: Double, node: String) throws -> CPUQuota {
        guard let (root, version) = self.hierarchy() else {
            throw CPUQuotaError(
                "--cpus needs the cgroup cpu controller, and this machine mounts it neither at /sys/fs/cgroup/cpu (v1) nor in /sys/fs/cgroup (v2)"
            )
        }
        let quota = Int((cpus * Double(Self.period)).rounded())
        let parent = root + "/ferry"
        let path = parent + "/\(node).\(getpid())"
        let guests = Self.guests(of: path)
        ContainerCgroup.removeStale(in: parent)
        try self.makeDirectory(guests)
        if version == 2 {
            try self.write("+cpu", to: root + "/cgroup.subtree_control")
            try self.write("+cpu", to: parent + "/cgroup.subtree_control")
            // Threads of one process in two cgroups: the child is threaded (its parent, holding
            // the process, becomes a threaded domain), and the cpu controller works there.
            try self.write("threaded", to: guests + "/cgroup.type")
            try self.write("+cpu", to: path + "/cgroup.subtree_control")
            try self.write("\(quota) \(Self.period)", to: guests + "/cpu.max")
        } else {
            try self.write(String(Self.period), to: guests + "/cpu.cfs_period_us")
            try self.write(String(quota), to: guests + "/cpu.cfs_quota_us")
        }
        try self.write(String(getpid()), to: path + "/cgroup.procs")
        return CPUQuota(path: path, root: root, cpus: cpus, version: version)
    }

    private static func guests(of node: String) -> String { node + "/guests" }

    /// Moves the calling thread (one that runs guests) under the quota.
    public func confineCallingThread() throws {
        let file = self.version == 2 ? "/cgroup.threads" : "/tasks"
        try Self.write(String(ferry_current_thread_id()), to: self.guestsPath + file)
    }

    /// Leaves the cgroups and removes them (at a clean stop; ones left by a crash are removed by
    /// the next node to start with `--cpus`).
    public func release() {
        try? Self.write(String(getpid()), to: self.root + "/cgroup.procs")
        rmdir(self.guestsPath)
        rmdir(self.path)
    }

    private static func makeDirectory(_ path: String) throws {
        do {
            try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        } catch {
            throw CPUQuotaError(
                "--cpus cannot make the cgroup \(path): \(Self.reason(error)); run the node as root, or in a cgroup delegated to this user"
            )
        }
    }

    private static func write(_ value: String, to file: String) throws {
        let fd = open(file, O_WRONLY)
        guard fd >= 0 else {
            throw CPUQuotaError("--cpus cannot open \(file): \(String(cString: strerror(errno)))")
        }
        defer { close(fd) }
        let written = value.withCString { Foundation.write(fd, $0, strlen($0)) }
        guard written >= 0 else {
            throw CPUQuotaError("--cpus cannot write '\(value)' to \(file): \(String(cString: strerror(errno)))")
        }
    }

    private static func reason(_ error: any Error) -> String {
        ((error as NSError).userInfo[NSUnderlyingErrorKey] as? NSError)?.localizedDescription
            ?? error.localizedDescription
    }
}

public struct CPUQuotaError: Error, CustomStringConvertible {
    public let description: String
    init(_ description: String) { self.description = description }
}

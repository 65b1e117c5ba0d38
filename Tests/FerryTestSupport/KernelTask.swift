import Foundation

/// A thread as the kernel shows it under `/proc/PID/task/TID`: its name, the files there, how
/// often it slept and how much CPU it used.
public struct KernelTask: Sendable, CustomStringConvertible {
    public let pid: Int32
    public let tid: String
    /// The thread's name (the kernel keeps 15 bytes of it).
    public let name: String

    /// The process's first thread, whose id is the process's.
    public static func main(of pid: Int32) -> KernelTask { KernelTask(pid: pid, tid: String(pid), name: "") }

    /// Every thread of process `pid` (this one's by default) with the names they have now.
    public static func all(of pid: Int32 = getpid()) throws -> [KernelTask] {
        try FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/task").compactMap { tid in
            // A thread that ended since the listing has no name to read.
            guard let name = try? String(contentsOfFile: "/proc/\(pid)/task/\(tid)/comm", encoding: .utf8) else {
                return nil
            }
            return KernelTask(pid: pid, tid: tid, name: name.trimmingCharacters(in: .newlines))
        }
    }

    /// The text of one of the thread's files (`stat`, `cgroup`, `status`, ...).
    public func file(_ name: String) throws -> String {
        try String(contentsOfFile: "/proc/\(self.pid)/task/\(self.tid)/\(name)", encoding: .utf8)
    }

    /// Times the thread gave up its CPU to wait (`voluntary_ctxt_switches`): a sleep in
    /// `epoll_wait` counts, a `sched_yield` does not.
    public func sleeps() throws -> Int {
        let line = try self.file("status").split(separator: "\n").first { $0.hasPrefix("voluntary_ctxt_switches:") }
        guard let line, let count = Int(line.split(separator: "\t").last ?? "") else {
            throw TestFailure("no voluntary_ctxt_switches in /proc/\(self.pid)/task/\(self.tid)/status")
        }
        return count
    }

    /// Nanoseconds the thread has run on a CPU (the first field of `schedstat`).
    public func cpuNanoseconds() throws -> UInt64 {
        guard let field = try self.file("schedstat").split(separator: " ").first, let value = UInt64(field) else {
            throw TestFailure("no CPU time in /proc/\(self.pid)/task/\(self.tid)/schedstat")
        }
        return value
    }

    public var description: String { "\(self.name) (\(self.tid))" }
}

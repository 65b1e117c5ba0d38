import Foundation

/// A private network for one container: a veth pair whose host end is `hostInterface` (`fyN`,
/// named by the subnet's index, so unique on the machine however the containers are named) with the
/// first address of a /30 from 10.89.0.0/16, and whose other end is the container's `eth0` with
/// the second, its default route through the host's end. Subnets are leased machine-wide by
/// directories in `/run/ferry/net` (mkdir is atomic), named by the subnet and holding the pid of
/// the process that owns it; a lease whose process is gone is taken over.
public struct ContainerNetwork: Sendable {
    public let hostInterface: String
    public let hostAddress: String
    public let containerAddress: String
    let leasePath: String

    static let leases = "/run/ferry/net"
    static let netmask = "255.255.255.252"

    /// Leases a subnet for a container.
    public static func lease() throws -> ContainerNetwork {
        try FileManager.default.createDirectory(atPath: self.leases, withIntermediateDirectories: true)
        for index in 0..<16_384 {
            let third = index / 64
            let fourth = (index % 64) * 4
            let path = "\(self.leases)/10.89.\(third).\(fourth)"
            if mkdir(path, 0o700) != 0 {
                guard errno == EEXIST, self.isStale(path) else { continue }
                // Another process may race us for a stale lease: whoever renames it away first wins.
                let claim = path + ".stale.\(getpid())"
                guard rename(path, claim) == 0 else { continue }
                try? FileManager.default.removeItem(atPath: claim)
                guard mkdir(path, 0o700) == 0 else { continue }
                // Its owner was killed: its host end may still be up.
                try? Self.ip(["link", "delete", "fy\(index)"], input: nil, quiet: true)
            }
            try? String(getpid()).write(toFile: path + "/owner", atomically: true, encoding: .utf8)
            return ContainerNetwork(
                hostInterface: "fy\(index)",
                hostAddress: "10.89.\(third).\(fourth + 1)",
                containerAddress: "10.89.\(third).\(fourth + 2)",
                leasePath: path
            )
        }
        throw ContainerError("no free private subnet is left in 10.89.0.0/16 (\(self.leases) holds every one)")
    }

    /// Its owner is gone, or it never named one: a process killed between the `mkdir` and the
    /// owner's write, seen as such once the directory is a minute old.
    private static func isStale(_ path: String) -> Bool {
        guard let text = try? String(contentsOfFile: path + "/owner", encoding: .utf8),
            let pid = pid_t(text.trimmingCharacters(in: .whitespacesAndNewlines))
        else {
            let made = (try? FileManager.default.attributesOfItem(atPath: path))?[.modificationDate] as? Date
            return made.map { Date().timeIntervalSince($0) > 60 } ?? false
        }
        return kill(pid, 0) != 0 && errno == ESRCH
    }

    /// Makes the veth pair with its container end in the network namespace of `pid`, and gives
    /// the host end its address (one `ip -batch` process; the container's end is configured by
    /// the container's own child).
    public func attach(to pid: pid_t) throws {
        let commands = """
            link add \(self.hostInterface) type veth peer name eth0 netns \(pid)
            addr add \(self.hostAddress)/30 dev \(self.hostInterface)
            link set \(self.hostInterface) up

            """
        try Self.ip(["-batch", "-"], input: commands)
    }

    /// Deletes the host's end (and so the pair, if the namespace has not already taken it down)
    /// and gives the subnet back.
    public func release() {
        try? Self.ip(["link", "delete", self.hostInterface], input: nil, quiet: true)
        try? FileManager.default.removeItem(atPath: self.leasePath)
    }

    private static func ip(_ arguments: [String], input: String?, quiet: Bool = false) throws {
        guard
            let tool = ["/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip"].first(where: {
                FileManager.default.isExecutableFile(atPath: $0)
            })
        else {
            throw ContainerError("--net private needs the ip tool (Debian's iproute2 package), which is not installed")
        }
        let result = try HostTool.run(tool, arguments, input: input.map { Array($0.utf8) })
        guard result.status == 0 || quiet else {
            throw ContainerError(
                "cannot make the container's veth pair: ip \(arguments.joined(separator: " ")): \(result.errors)"
            )
        }
    }
}

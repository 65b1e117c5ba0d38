import Foundation

/// What is checked before anything is made for a container, so a bad flag or bundle field is
/// refused with its name and nothing is left behind.
enum ContainerValidation {
    static func check(_ spec: ContainerSpec) throws {
        guard !spec.arguments.isEmpty else { throw ContainerError("no program to run: give one after --") }
        guard !spec.layers.isEmpty else {
            throw ContainerError("no root file system: give --rootfs DIR or --bundle DIR")
        }
        for layer in spec.layers {
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: layer, isDirectory: &isDirectory), isDirectory.boolValue else {
                throw ContainerError("the layer \(layer) is not a directory")
            }
            // overlayfs separates layers with ':' and options with ','.
            guard !layer.contains(":"), !layer.contains(",") else {
                throw ContainerError("the layer path \(layer) contains ':' or ',', which overlayfs cannot take")
            }
        }
        for mount in spec.mounts {
            try self.checkDestination(mount.destination, what: "mount destination")
        }
        guard spec.workingDirectory.hasPrefix("/") else {
            throw ContainerError("the working directory \(spec.workingDirectory) must be absolute")
        }
        if let hostname = spec.hostname, hostname.utf8.count > 64 || hostname.isEmpty {
            throw ContainerError("the hostname '\(hostname)' must be 1 to 64 bytes")
        }
        guard spec.publish.isEmpty || spec.network == .private else {
            throw ContainerError("--publish needs --net private (the container has no address of its own otherwise)")
        }
        if spec.network == .private && geteuid() != 0 {
            throw ContainerError(
                "--net private makes a veth pair on the host, which needs root; use --net none or host"
            )
        }
        guard spec.namespaces.contains(.mount) else {
            throw ContainerError("a container needs a mount namespace (its root is mounted in one)")
        }
    }

    /// An absolute path inside the container with no `..`: a mount may not climb out of the root.
    static func checkDestination(_ path: String, what: String) throws {
        guard path.hasPrefix("/") else { throw ContainerError("the \(what) \(path) must be absolute") }
        guard !path.split(separator: "/").contains("..") else {
            throw ContainerError("the \(what) \(path) contains '..', which could leave the container's root")
        }
    }
}

/// Byte counts as flags and reports write them: `64M`, `1G`, `512k`, or plain bytes.
public enum ByteCount {
    public static func parse(_ text: String) -> Int64? {
        let units: [Character: Int64] = ["k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40]
        var digits = text.lowercased()
        if digits.hasSuffix("ib") { digits.removeLast(2) } else if digits.hasSuffix("b") { digits.removeLast() }
        var scale: Int64 = 1
        if let last = digits.last, let unit = units[last] {
            scale = unit
            digits.removeLast()
        }
        guard let value = Int64(digits), value > 0 else { return nil }
        let (product, overflow) = value.multipliedReportingOverflow(by: scale)
        return overflow ? nil : product
    }

    public static func format(_ bytes: Int64) -> String {
        for (unit, size) in [("GiB", Int64(1) << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)] where bytes >= size {
            let value = Double(bytes) / Double(size)
            return value == value.rounded() ? "\(Int64(value)) \(unit)" : String(format: "%.1f %@", value, unit)
        }
        return "\(bytes) bytes"
    }
}

/// The flags of `ferry container run`, read into a ``ContainerSpec``: each parser says what is
/// wrong with the value it was given.
public enum ContainerFlags {
    /// `--memory 64M`.
    public static func memory(_ text: String) throws -> Int64 {
        guard let bytes = ByteCount.parse(text), bytes >= 1 << 20 else {
            throw ContainerError("--memory \(text): give a size of at least 1M, like 64M or 1G")
        }
        return bytes
    }

    /// The weights `--cpu-shares` takes, as cgroup v1's `cpu.shares` does.
    public static let cpuShareRange: ClosedRange<UInt64> = 2...262_144

    /// `--cpu-shares N`: the container's CPU weight.
    public static func cpuShares(_ shares: Int) throws -> UInt64 {
        guard shares >= 0, Self.cpuShareRange.contains(UInt64(shares)) else {
            throw ContainerError(
                "--cpu-shares \(shares): give a weight from 2 to 262144 (a plain process has 1024)"
            )
        }
        return UInt64(shares)
    }

    /// `--cpus 0.5`: the CFS quota for a 100 ms period.
    public static func cpuQuota(_ cpus: Double) throws -> Int64 {
        guard cpus >= 0.01, cpus <= 1024 else {
            throw ContainerError("--cpus \(cpus): give a number of CPUs from 0.01 up")
        }
        return Int64((cpus * 100_000).rounded())
    }

    /// `--publish HOST_PORT:PORT`.
    public static func publish(_ text: String) throws -> ContainerSpec.PortMapping {
        let parts = text.split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count == 2, let host = Int(parts[0]), let port = Int(parts[1]), (0...65535).contains(host),
            (1...65535).contains(port)
        else {
            throw ContainerError(
                "--publish \(text): give HOST_PORT:PORT, ports from 1 to 65535 (HOST_PORT 0 picks one)"
            )
        }
        return ContainerSpec.PortMapping(hostPort: host, containerPort: port)
    }

    /// `--mount SRC:DST[:ro]`: a recursive bind mount of the host's SRC at DST.
    public static func mount(_ text: String) throws -> ContainerSpec.Mount {
        let parts = text.split(separator: ":", omittingEmptySubsequences: false).map(String.init)
        guard parts.count == 2 || (parts.count == 3 && ["ro", "rw"].contains(parts[2])), !parts[0].isEmpty else {
            throw ContainerError("--mount \(text): give SRC:DST or SRC:DST:ro")
        }
        try ContainerValidation.checkDestination(parts[1], what: "--mount destination")
        let source = URL(fileURLWithPath: parts[0]).standardizedFileURL.path
        guard FileManager.default.fileExists(atPath: source) else {
            throw ContainerError("--mount \(text): \(source) does not exist")
        }
        let options = parts.count == 3 && parts[2] == "ro" ? ["rbind", "ro"] : ["rbind"]
        return ContainerSpec.Mount(type: "bind", source: source, destination: parts[1], options: options)
    }

    /// `--user UID:GID` (or just UID, with group UID).
    public static func user(_ text: String) throws -> ContainerSpec.User {
        let parts = text.split(separator: ":", omittingEmptySubsequences: false)
        guard (1...2).contains(parts.count), let uid = UInt32(parts[0]), let gid = UInt32(parts.last!) else {
            throw ContainerError("--user \(text): give numeric UID:GID, like 1000:1000")
        }
        return ContainerSpec.User(uid: uid, gid: gid)
    }

    /// `--env K=V`.
    public static func environment(_ text: String) throws -> String {
        guard let equals = text.firstIndex(of: "="), equals != text.startIndex else {
            throw ContainerError("--env \(text): give NAME=VALUE")
        }
        return text
    }
}

/// A Linux capability, by its number in capabilities(7); spelled `CAP_NAME` in OCI bundles.
public struct Capability: Hashable, Sendable, Comparable, CustomStringConvertible {
    public let number: Int

    public init?(number: Int) {
        guard Self.names.indices.contains(number) else { return nil }
        self.number = number
    }

    /// `CAP_NET_RAW` or `NET_RAW`, any case.
    public init?(name: String) {
        var bare = name.uppercased()
        if bare.hasPrefix("CAP_") { bare.removeFirst(4) }
        guard let number = Self.names.firstIndex(of: bare) else { return nil }
        self.number = number
    }

    public var description: String { "CAP_" + Self.names[self.number] }

    public static func < (lhs: Capability, rhs: Capability) -> Bool { lhs.number < rhs.number }

    /// In number order, as linux/capability.h defines them (up to CAP_CHECKPOINT_RESTORE, 40).
    static let names = [
        "CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER", "FSETID", "KILL", "SETGID", "SETUID", "SETPCAP",
        "LINUX_IMMUTABLE", "NET_BIND_SERVICE", "NET_BROADCAST", "NET_ADMIN", "NET_RAW", "IPC_LOCK", "IPC_OWNER",
        "SYS_MODULE", "SYS_RAWIO", "SYS_CHROOT", "SYS_PTRACE", "SYS_PACCT", "SYS_ADMIN", "SYS_BOOT", "SYS_NICE",
        "SYS_RESOURCE", "SYS_TIME", "SYS_TTY_CONFIG", "MKNOD", "LEASE", "AUDIT_WRITE", "AUDIT_CONTROL", "SETFCAP",
        "MAC_OVERRIDE", "MAC_ADMIN", "SYSLOG", "WAKE_ALARM", "BLOCK_SUSPEND", "AUDIT_READ", "PERFMON", "BPF",
        "CHECKPOINT_RESTORE",
    ]

    /// Docker's and Podman's default set: enough for a program to run as root in its own tree,
    /// nothing that reaches the host (no SYS_ADMIN, SYS_MODULE, SYS_PTRACE, NET_ADMIN, SYS_TIME).
    public static let defaultSet: Set<Capability> = Set(
        [
            "CHOWN", "DAC_OVERRIDE", "FSETID", "FOWNER", "MKNOD", "NET_RAW", "SETGID", "SETUID", "SETFCAP",
            "SETPCAP", "NET_BIND_SERVICE", "SYS_CHROOT", "KILL", "AUDIT_WRITE",
        ].map { Capability(name: $0)! }
    )
}

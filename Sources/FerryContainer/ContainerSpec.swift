/// Everything Ferry needs to start one container, whether it came from `ferry container run`'s
/// flags or from an OCI bundle's `config.json`: one description, one launcher.
public struct ContainerSpec: Sendable, Equatable {
    /// A file system mounted inside the container, at `destination` (absolute, inside its root).
    public struct Mount: Sendable, Equatable {
        /// `bind`, `proc`, `tmpfs`, `sysfs`, `devpts`, `mqueue` or `cgroup`.
        public var type: String
        /// A host path for `bind`; the file system's name otherwise.
        public var source: String
        public var destination: String
        /// mount(8) options: `ro`, `nosuid`, `nodev`, `noexec`, `rbind`, and data such as `mode=755`.
        public var options: [String]

        public init(type: String, source: String, destination: String, options: [String] = []) {
            self.type = type
            self.source = source
            self.destination = destination
            self.options = options
        }
    }

    /// A range of user or group ids of a user namespace: `size` ids from `containerID` inside are
    /// `hostID` and on outside.
    public struct IDMapping: Sendable, Equatable {
        public var containerID: UInt32
        public var hostID: UInt32
        public var size: UInt32

        public init(containerID: UInt32, hostID: UInt32, size: UInt32) {
            self.containerID = containerID
            self.hostID = hostID
            self.size = size
        }
    }

    public enum Namespace: String, Sendable, CaseIterable {
        case pid, network, ipc, uts, mount, user, cgroup
    }

    /// How the container reaches the network: only its own loopback, the host's stack, or a veth
    /// pair to the host with an address of its own.
    public enum Network: String, Sendable, CaseIterable, Codable {
        case none, host, `private`
    }

    /// `--publish HOST_PORT:PORT`: the host's port forwarded to the container's (private network).
    public struct PortMapping: Sendable, Equatable, Codable {
        public var hostPort: Int
        public var containerPort: Int

        public init(hostPort: Int, containerPort: Int) {
            self.hostPort = hostPort
            self.containerPort = containerPort
        }
    }

    public struct User: Sendable, Equatable {
        public var uid: UInt32
        public var gid: UInt32
        public var additionalGids: [UInt32]

        public init(uid: UInt32 = 0, gid: UInt32 = 0, additionalGids: [UInt32] = []) {
            self.uid = uid
            self.gid = gid
            self.additionalGids = additionalGids
        }
    }

    /// The five capability sets of the program, by number (see ``Capability``).
    public struct Capabilities: Sendable, Equatable {
        public var bounding: Set<Capability>
        public var effective: Set<Capability>
        public var permitted: Set<Capability>
        public var inheritable: Set<Capability>
        public var ambient: Set<Capability>

        public init(
            bounding: Set<Capability>,
            effective: Set<Capability>,
            permitted: Set<Capability>,
            inheritable: Set<Capability> = [],
            ambient: Set<Capability> = []
        ) {
            self.bounding = bounding
            self.effective = effective
            self.permitted = permitted
            self.inheritable = inheritable
            self.ambient = ambient
        }

        /// Docker's and Podman's default set: what most programs need, nothing that reaches the host.
        public static let `default` = Capabilities(
            bounding: Capability.defaultSet,
            effective: Capability.defaultSet,
            permitted: Capability.defaultSet
        )
    }

    /// setrlimit(2): `type` as OCI spells it (`RLIMIT_NOFILE`).
    public struct ResourceLimit: Sendable, Equatable {
        public var type: String
        public var soft: UInt64
        public var hard: UInt64

        public init(type: String, soft: UInt64, hard: UInt64) {
            self.type = type
            self.soft = soft
            self.hard = hard
        }
    }

    /// Limits applied through cgroups (v1 or v2, whichever the machine has).
    public struct Resources: Sendable, Equatable {
        /// Bytes of memory; an overrun is killed by the kernel's OOM killer.
        public var memory: Int64?
        /// Bytes of memory plus swap (OCI `memory.swap`); equal to `memory` means no swap.
        public var memoryAndSwap: Int64?
        /// The most tasks (processes and threads) at once.
        public var pids: Int64?
        /// CFS quota and period in microseconds: `quota / period` CPUs.
        public var cpuQuota: Int64?
        public var cpuPeriod: UInt64?
        /// cpuset: which CPUs (`0-1`).
        public var cpus: String?
        /// The CPU weight against its neighbours when they compete (v1 `cpu.shares`, 2 to 262144,
        /// 1024 being a plain process's; v2 `cpu.weight` converted as crun and runc do).
        public var cpuShares: UInt64?

        public init(
            memory: Int64? = nil,
            memoryAndSwap: Int64? = nil,
            pids: Int64? = nil,
            cpuQuota: Int64? = nil,
            cpuPeriod: UInt64? = nil,
            cpus: String? = nil,
            cpuShares: UInt64? = nil
        ) {
            self.memory = memory
            self.memoryAndSwap = memoryAndSwap
            self.pids = pids
            self.cpuQuota = cpuQuota
            self.cpuPeriod = cpuPeriod
            self.cpus = cpus
            self.cpuShares = cpuShares
        }

        public var isEmpty: Bool { self == Resources() }

        /// `--cpus N`: a CFS quota of N CPUs over a 100 ms period.
        public mutating func limitCPUs(to cpus: Double) throws {
            self.cpuQuota = try ContainerFlags.cpuQuota(cpus)
            self.cpuPeriod = 100_000
        }
    }

    /// Read-only lower layers, the lowest first: `--rootfs` (or the bundle's `root.path`) and then
    /// each `--layer`. A per-container writable upper layer goes on top with overlayfs.
    public var layers: [String]
    /// The root is mounted read-only (OCI `root.readonly`): not even the upper layer takes writes.
    public var readonlyRoot: Bool
    public var hostname: String?
    /// The program and its arguments; the program is looked up in the container's `PATH`.
    public var arguments: [String]
    /// `K=V` strings.
    public var environment: [String]
    public var workingDirectory: String
    public var user: User
    public var namespaces: Set<Namespace>
    public var network: Network
    public var publish: [PortMapping]

    /// `--net`: the network, with the network namespace it needs (none for the host's).
    public mutating func use(_ network: Network) {
        self.network = network
        if network == .host { self.namespaces.remove(.network) } else { self.namespaces.insert(.network) }
    }
    /// Mounted in order, after the root; the defaults give /proc, /dev, /dev/pts, /dev/shm,
    /// /dev/mqueue and a read-only /sys.
    public var mounts: [Mount]
    /// Covered (files by /dev/null, directories by an empty read-only tmpfs).
    public var maskedPaths: [String]
    /// Remounted read-only.
    public var readonlyPaths: [String]
    public var capabilities: Capabilities
    public var noNewPrivileges: Bool
    public var resourceLimits: [ResourceLimit]
    public var resources: Resources
    public var uidMappings: [IDMapping]
    public var gidMappings: [IDMapping]
    /// Ferry's seccomp filter, which denies the calls that reach past the container.
    public var seccomp: Bool
    /// Runs a tiny init as PID 1 that forwards signals and reaps orphans; the program is then PID 2.
    public var runsInit: Bool

    public init(
        layers: [String],
        arguments: [String],
        readonlyRoot: Bool = false,
        hostname: String? = nil,
        environment: [String] = ContainerSpec.defaultEnvironment,
        workingDirectory: String = "/",
        user: User = User(),
        namespaces: Set<Namespace> = [.pid, .network, .ipc, .uts, .mount],
        network: Network = .none,
        publish: [PortMapping] = [],
        mounts: [Mount] = ContainerSpec.defaultMounts,
        maskedPaths: [String] = ContainerSpec.defaultMaskedPaths,
        readonlyPaths: [String] = ContainerSpec.defaultReadonlyPaths,
        capabilities: Capabilities = .default,
        noNewPrivileges: Bool = true,
        resourceLimits: [ResourceLimit] = [],
        resources: Resources = Resources(),
        uidMappings: [IDMapping] = [],
        gidMappings: [IDMapping] = [],
        seccomp: Bool = true,
        runsInit: Bool = false
    ) {
        self.layers = layers
        self.arguments = arguments
        self.readonlyRoot = readonlyRoot
        self.hostname = hostname
        self.environment = environment
        self.workingDirectory = workingDirectory
        self.user = user
        self.namespaces = namespaces
        self.network = network
        self.publish = publish
        self.mounts = mounts
        self.maskedPaths = maskedPaths
        self.readonlyPaths = readonlyPaths
        self.capabilities = capabilities
        self.noNewPrivileges = noNewPrivileges
        self.resourceLimits = resourceLimits
        self.resources = resources
        self.uidMappings = uidMappings
        self.gidMappings = gidMappings
        self.seccomp = seccomp
        self.runsInit = runsInit
    }

    public static let defaultEnvironment = [
        "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    ]

    /// The mounts crun's and runc's `spec` write: a fresh /proc, a minimal /dev, /sys read-only.
    public static let defaultMounts: [Mount] = [
        Mount(type: "proc", source: "proc", destination: "/proc", options: ["nosuid", "noexec", "nodev"]),
        Mount(
            type: "tmpfs",
            source: "tmpfs",
            destination: "/dev",
            options: ["nosuid", "strictatime", "mode=755", "size=65536k"]
        ),
        Mount(
            type: "devpts",
            source: "devpts",
            destination: "/dev/pts",
            options: ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"]
        ),
        Mount(
            type: "tmpfs",
            source: "shm",
            destination: "/dev/shm",
            options: ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]
        ),
        Mount(type: "mqueue", source: "mqueue", destination: "/dev/mqueue", options: ["nosuid", "noexec", "nodev"]),
        Mount(type: "sysfs", source: "sysfs", destination: "/sys", options: ["nosuid", "noexec", "nodev", "ro"]),
    ]

    public static let defaultMaskedPaths = [
        "/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats", "/proc/timer_list",
        "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware", "/proc/scsi",
    ]

    public static let defaultReadonlyPaths = [
        "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger",
    ]
}

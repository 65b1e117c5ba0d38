import CFerryLinux
import Foundation

/// C strings and arrays that live as long as the arena: the launch struct points into them while
/// the child is cloned (the child gets its own copy of them with its copy of our memory).
final class CArena {
    private var allocations: [UnsafeMutableRawPointer] = []

    func string(_ value: String) -> UnsafeMutablePointer<CChar> {
        let copy = strdup(value)!
        self.allocations.append(UnsafeMutableRawPointer(copy))
        return copy
    }

    func optionalString(_ value: String?) -> UnsafeMutablePointer<CChar>? {
        value.map { self.string($0) }
    }

    func array<T>(_ values: [T]) -> UnsafeMutablePointer<T> {
        let pointer = UnsafeMutablePointer<T>.allocate(capacity: max(values.count, 1))
        pointer.initialize(from: values, count: values.count)
        self.allocations.append(UnsafeMutableRawPointer(pointer))
        return pointer
    }

    /// A NULL-terminated array of C strings (argv, envp).
    func strings(_ values: [String]) -> UnsafeMutablePointer<UnsafeMutablePointer<CChar>?> {
        self.array(values.map { Optional(self.string($0)) } + [nil])
    }

    deinit {
        for allocation in self.allocations { free(allocation) }
    }
}

/// Translates a ``ContainerSpec`` into the struct the C child reads.
enum LaunchStruct {
    static func make(
        spec: ContainerSpec,
        directory: String,
        network: ContainerNetwork?,
        arena: CArena
    ) throws -> ferry_container_launch {
        var launch = ferry_container_launch()
        launch.stdin_fd = -1
        launch.stdout_fd = -1
        launch.stderr_fd = -1
        var flags: Int32 = 0
        let namespaceFlags: [ContainerSpec.Namespace: Int32] = [
            .pid: 0x2000_0000, .network: 0x4000_0000, .ipc: 0x0800_0000, .uts: 0x0400_0000, .mount: 0x0002_0000,
            .user: 0x1000_0000, .cgroup: 0x0200_0000,
        ]
        for namespace in spec.namespaces { flags |= namespaceFlags[namespace] ?? 0 }
        launch.clone_flags = flags
        launch.hostname = UnsafePointer(arena.optionalString(spec.namespaces.contains(.uts) ? spec.hostname : nil))
        launch.root = UnsafePointer(arena.string(directory + "/root"))
        // overlayfs lists its lower layers top first.
        let lowers = spec.layers.reversed().joined(separator: ":")
        launch.overlay_options = UnsafePointer(
            arena.string("lowerdir=\(lowers),upperdir=\(directory)/upper,workdir=\(directory)/work")
        )
        launch.readonly_root = spec.readonlyRoot ? 1 : 0
        let mounts = try spec.mounts.map { try self.mount($0, arena: arena) }
        launch.mounts = UnsafePointer(arena.array(mounts))
        launch.mount_count = Int32(mounts.count)
        launch.populate_dev = spec.mounts.contains { $0.destination == "/dev" && $0.type == "tmpfs" } ? 1 : 0
        launch.masked_paths = UnsafePointer(arena.array(spec.maskedPaths.map { UnsafePointer(arena.string($0)) }))
        launch.masked_count = Int32(spec.maskedPaths.count)
        launch.readonly_paths = UnsafePointer(arena.array(spec.readonlyPaths.map { UnsafePointer(arena.string($0)) }))
        launch.readonly_count = Int32(spec.readonlyPaths.count)
        launch.cwd = UnsafePointer(arena.string(spec.workingDirectory))
        launch.argv = UnsafePointer(arena.strings(spec.arguments))
        launch.envp = UnsafePointer(arena.strings(spec.environment))
        let path = spec.environment.last { $0.hasPrefix("PATH=") }.map { String($0.dropFirst(5)) }
        launch.search_path = UnsafePointer(
            arena.string(path ?? "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
        )
        launch.uid = spec.user.uid
        launch.gid = spec.user.gid
        launch.groups = UnsafePointer(arena.array(spec.user.additionalGids))
        launch.group_count = Int32(spec.user.additionalGids.count)
        let caps = spec.capabilities
        launch.cap_bounding = self.mask(caps.bounding)
        launch.cap_effective = self.mask(caps.effective)
        launch.cap_permitted = self.mask(caps.permitted)
        // The kernel raises an ambient capability only when it is inheritable too.
        launch.cap_inheritable = self.mask(caps.inheritable.union(caps.ambient))
        launch.cap_ambient = self.mask(caps.ambient)
        launch.cap_last = Self.lastCapability
        launch.no_new_privileges = spec.noNewPrivileges ? 1 : 0
        if spec.seccomp {
            let admin = Capability(name: "SYS_ADMIN").map { caps.effective.contains($0) } ?? false
            let ptrace = Capability(name: "SYS_PTRACE").map { caps.effective.contains($0) } ?? false
            launch.seccomp = 1 | (admin ? 2 : 0) | (ptrace ? 4 : 0)
        }
        launch.run_init = spec.runsInit ? 1 : 0
        let limits = try spec.resourceLimits.map { limit -> (Int32, rlimit) in
            guard let resource = ResourceLimitName.number(limit.type) else {
                throw ContainerError("unknown resource limit \(limit.type)")
            }
            return (resource, rlimit(rlim_cur: rlim_t(limit.soft), rlim_max: rlim_t(limit.hard)))
        }
        launch.rlimit_resources = UnsafePointer(arena.array(limits.map(\.0)))
        launch.rlimits = UnsafePointer(arena.array(limits.map(\.1)))
        launch.rlimit_count = Int32(limits.count)
        if spec.namespaces.contains(.network) {
            launch.configure_network = 1
            if let network {
                launch.interface = UnsafePointer(arena.string("eth0"))
                launch.address = inet_addr(network.containerAddress)
                launch.netmask = inet_addr(ContainerNetwork.netmask)
                launch.gateway = inet_addr(network.hostAddress)
            }
        }
        return launch
    }

    /// The highest capability number this kernel knows.
    static let lastCapability: Int32 = {
        let text = try? String(contentsOfFile: "/proc/sys/kernel/cap_last_cap", encoding: .utf8)
        return text.flatMap { Int32($0.trimmingCharacters(in: .whitespacesAndNewlines)) } ?? 40
    }()

    private static func mask(_ set: Set<Capability>) -> UInt64 {
        set.reduce(0) { $0 | (1 << UInt64($1.number)) }
    }

    /// A mount's options split into flags and file-system data, as mount(8) does.
    private static func mount(_ mount: ContainerSpec.Mount, arena: CArena) throws -> ferry_container_mount {
        var result = ferry_container_mount()
        var flags: UInt = 0
        var data: [String] = []
        var readonly = false
        var bind = mount.type == "bind"
        var recursive = false
        var source = mount.source
        var type = mount.type
        for option in mount.options {
            switch option {
            case "ro": readonly = true
            case "rw": readonly = false
            case "nosuid": flags |= UInt(MS_NOSUID)
            case "nodev": flags |= UInt(MS_NODEV)
            case "noexec": flags |= UInt(MS_NOEXEC)
            case "sync": flags |= UInt(MS_SYNCHRONOUS)
            case "dirsync": flags |= UInt(MS_DIRSYNC)
            case "noatime": flags |= UInt(MS_NOATIME)
            case "nodiratime": flags |= UInt(MS_NODIRATIME)
            case "relatime": flags |= UInt(MS_RELATIME)
            case "strictatime": flags |= UInt(MS_STRICTATIME)
            case "bind": bind = true
            case "rbind":
                bind = true
                recursive = true
            // Every mount of a container is private to it already.
            case "private", "rprivate": break
            case "suid", "dev", "exec", "atime", "diratime": break
            default:
                guard option.contains("=") || ["newinstance"].contains(option) else {
                    throw ContainerError("mount option \(option) of \(mount.destination) is not implemented")
                }
                data.append(option)
            }
        }
        // A cgroup mount shows the host's hierarchy read-only (crun does so on cgroup v1).
        if type == "cgroup" {
            bind = true
            recursive = true
            readonly = true
            source = "/sys/fs/cgroup"
            type = "bind"
            data = []
        }
        var isFile = false
        if bind {
            var status = stat()
            guard stat(source, &status) == 0 else {
                throw ContainerError("the source \(source) of the mount at \(mount.destination) does not exist")
            }
            isFile = (status.st_mode & S_IFMT) != S_IFDIR
        }
        result.type = UnsafePointer(arena.string(type))
        result.source = UnsafePointer(arena.string(source))
        result.destination = UnsafePointer(arena.string(mount.destination))
        result.flags = flags
        result.data = UnsafePointer(arena.optionalString(data.isEmpty ? nil : data.joined(separator: ",")))
        result.bind = bind ? 1 : 0
        result.recursive = recursive ? 1 : 0
        result.readonly = readonly ? 1 : 0
        result.source_is_file = isFile ? 1 : 0
        return result
    }
}

/// setrlimit's resources as OCI names them.
enum ResourceLimitName {
    static let names = [
        "RLIMIT_CPU", "RLIMIT_FSIZE", "RLIMIT_DATA", "RLIMIT_STACK", "RLIMIT_CORE", "RLIMIT_RSS", "RLIMIT_NPROC",
        "RLIMIT_NOFILE", "RLIMIT_MEMLOCK", "RLIMIT_AS", "RLIMIT_LOCKS", "RLIMIT_SIGPENDING", "RLIMIT_MSGQUEUE",
        "RLIMIT_NICE", "RLIMIT_RTPRIO", "RLIMIT_RTTIME",
    ]

    static func number(_ name: String) -> Int32? {
        self.names.firstIndex(of: name).map(Int32.init)
    }
}

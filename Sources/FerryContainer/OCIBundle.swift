import Foundation

/// Reads an OCI runtime bundle (runtime-spec 1.x `config.json`) into a ``ContainerSpec``.
///
/// Every field Ferry does not carry out is refused by its JSON path rather than skipped: a bundle
/// that asks for a seccomp profile, a hook or a device Ferry cannot give must not run as if it got it.
public enum OCIBundle {
    /// Reads `directory/config.json`; a relative `root.path` or bind source is taken from `directory`.
    public static func load(directory: String) throws -> ContainerSpec {
        let file = directory.hasSuffix("/") ? directory + "config.json" : directory + "/config.json"
        return try parse(readFile(file), bundle: directory)
    }

    static func parse(_ data: [UInt8], bundle: String) throws -> ContainerSpec {
        let json: Any
        do {
            json = try JSONSerialization.jsonObject(with: Data(data))
        } catch {
            let reason = (error as NSError).userInfo[NSDebugDescriptionErrorKey] as? String
            throw OCIBundleError(path: nil, "config.json is not valid JSON: \(reason ?? "\(error)")")
        }
        guard let fields = json as? [String: Any] else {
            throw OCIBundleError(path: nil, "config.json must hold a JSON object")
        }
        return try Reader(bundle: absolute(bundle)).spec(JSONObject(fields: fields, path: ""))
    }

    /// Reads with open(2) and read(2) so that a failure says why in strerror's words.
    private static func readFile(_ path: String) throws -> [UInt8] {
        func failure() -> OCIBundleError {
            OCIBundleError(path: nil, "cannot read \(path): \(String(cString: strerror(errno)))")
        }
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw failure() }
        defer { close(fd) }
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65_536)
        while true {
            let count = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if count == 0 { return bytes }
            if count < 0 {
                if errno == EINTR { continue }
                throw failure()
            }
            bytes += buffer[..<count]
        }
    }

    private static func absolute(_ path: String) -> String {
        path.hasPrefix("/") ? path : FileManager.default.currentDirectoryPath + "/" + path
    }
}

/// A `config.json` that Ferry cannot run as written; `description` names the field by its JSON path.
public struct OCIBundleError: Error, CustomStringConvertible, Equatable {
    /// The offending field (`linux.namespaces[2].path`); nil when the file itself is unreadable.
    public let path: String?
    public let description: String

    init(path: String?, _ description: String) {
        self.path = path
        self.description = description
    }

    static func field(_ path: String, _ message: String) -> Self {
        Self(path: path, "config.json: \(message)")
    }

    static func invalid(_ path: String, _ expected: String) -> Self {
        field(path, "\(path) must be \(expected)")
    }

    static func notImplemented(_ path: String, _ why: String) -> Self {
        field(path, "\(path) is not implemented by Ferry; remove it (\(why))")
    }

    static func unknown(_ path: String) -> Self {
        field(path, "\(path) is not part of runtime-spec 1.x as Ferry reads it")
    }
}

/// One JSON object and where it sits in `config.json`, for error messages.
private struct JSONObject {
    let fields: [String: Any]
    let path: String

    /// JSON `null` reads as an absent field, as Go's encoder (which wrote most bundles) means it.
    init(fields: [String: Any], path: String) {
        self.fields = fields.filter { !($0.value is NSNull) }
        self.path = path
    }

    func path(_ key: String) -> String { path.isEmpty ? key : "\(path).\(key)" }

    func has(_ key: String) -> Bool { fields[key] != nil }

    /// Refuses the first key (in sorted order, so the error is stable) Ferry refuses or does not know.
    func check(known: Set<String>, refused: [String: String] = [:]) throws {
        for key in fields.keys.sorted() {
            if let why = refused[key] { throw OCIBundleError.notImplemented(path(key), why) }
            if !known.contains(key) { throw OCIBundleError.unknown(path(key)) }
        }
    }

    func optional<T>(_ key: String, _ value: Value<T>) throws -> T? {
        guard let raw = fields[key] else { return nil }
        guard let read = value.read(raw) else { throw OCIBundleError.invalid(path(key), value.expected) }
        return read
    }

    func required<T>(_ key: String, _ value: Value<T>) throws -> T {
        guard let read = try optional(key, value) else { throw OCIBundleError.invalid(path(key), value.expected) }
        return read
    }

    func object(_ key: String) throws -> JSONObject? {
        guard let raw = fields[key] else { return nil }
        guard let object = raw as? [String: Any] else { throw OCIBundleError.invalid(path(key), "an object") }
        return JSONObject(fields: object, path: path(key))
    }

    /// An array of objects, each with its index in its path (`mounts[3]`); absent reads as empty.
    func objects(_ key: String) throws -> [JSONObject] {
        guard let raw = fields[key] else { return [] }
        guard let array = raw as? [Any] else { throw OCIBundleError.invalid(path(key), "an array of objects") }
        return try array.enumerated().map { index, element in
            let elementPath = "\(path(key))[\(index)]"
            guard let object = element as? [String: Any] else {
                throw OCIBundleError.invalid(elementPath, "an object")
            }
            return JSONObject(fields: object, path: elementPath)
        }
    }
}

/// How to read one JSON value, and what to say when it is something else.
private struct Value<T> {
    let expected: String
    let read: (Any) -> T?
}

extension Value where T == String {
    static var string: Self { Self(expected: "a string") { $0 as? String } }
    static var absolutePath: Self {
        Self(expected: "an absolute path") { ($0 as? String).flatMap { $0.hasPrefix("/") ? $0 : nil } }
    }
}

extension Value where T == Bool {
    static var bool: Self {
        Self(expected: "true or false") { ($0 as? NSNumber).flatMap { isBoolean($0) ? $0.boolValue : nil } }
    }
}

extension Value where T: FixedWidthInteger {
    /// Integers only: `1.5`, `1e3`, `true` and out-of-range numbers are refused, as Go's decoder does.
    static var integer: Self {
        Self(expected: "an integer from \(T.min) to \(T.max)") { exactInteger($0) }
    }
}

extension Value where T == [String] {
    static var strings: Self { Self(expected: "an array of strings") { $0 as? [String] } }
    static var absolutePaths: Self {
        Self(expected: "an array of absolute paths") { raw in
            (raw as? [String]).flatMap { $0.allSatisfy { $0.hasPrefix("/") } ? $0 : nil }
        }
    }
}

extension Value where T == [UInt32] {
    static var integers: Self {
        Self(expected: "an array of integers from 0 to \(UInt32.max)") { raw in
            guard let array = raw as? [Any] else { return nil }
            let values = array.compactMap { exactInteger($0) as UInt32? }
            return values.count == array.count ? values : nil
        }
    }
}

/// JSONSerialization gives booleans as NSNumbers of Objective-C type `c`, and no other number so.
private func isBoolean(_ number: NSNumber) -> Bool { String(cString: number.objCType) == "c" }

private func exactInteger<T: FixedWidthInteger>(_ raw: Any) -> T? {
    guard let number = raw as? NSNumber, !isBoolean(number) else { return nil }
    let type = String(cString: number.objCType)
    guard type != "d", type != "f" else { return nil }
    if let value = raw as? Int64 { return T(exactly: value) }
    if let value = raw as? UInt64 { return T(exactly: value) }
    return nil
}

/// The walk over `config.json`, with the bundle's absolute directory for relative paths.
private struct Reader {
    let bundle: String

    static let notLinux = "Ferry runs Linux containers"
    static let mountTypes: Set<String> = ["bind", "proc", "tmpfs", "sysfs", "devpts", "mqueue", "cgroup"]
    static let resourceLimits: Set<String> = [
        "RLIMIT_CPU", "RLIMIT_FSIZE", "RLIMIT_DATA", "RLIMIT_STACK", "RLIMIT_CORE", "RLIMIT_RSS", "RLIMIT_NPROC",
        "RLIMIT_NOFILE", "RLIMIT_MEMLOCK", "RLIMIT_AS", "RLIMIT_LOCKS", "RLIMIT_SIGPENDING", "RLIMIT_MSGQUEUE",
        "RLIMIT_NICE", "RLIMIT_RTPRIO", "RLIMIT_RTTIME",
    ]
    static let devices = "Ferry's /dev holds only null, zero, full, random, urandom, tty, console, ptmx and pts"

    func spec(_ config: JSONObject) throws -> ContainerSpec {
        if config.has("hooks") {
            throw OCIBundleError.field(
                "hooks",
                "hooks are not implemented by Ferry; remove them (Ferry runs no programs outside the container)"
            )
        }
        try config.check(
            known: ["ociVersion", "process", "root", "hostname", "mounts", "annotations", "linux"],
            refused: [
                "domainname": "Ferry sets only the hostname",
                "solaris": Self.notLinux, "windows": Self.notLinux, "vm": Self.notLinux, "zos": Self.notLinux,
                "freebsd": Self.notLinux,
            ]
        )
        let version: String = try config.required("ociVersion", .string)
        guard version.hasPrefix("1.") else {
            throw OCIBundleError.field("ociVersion", "ociVersion \(version) is not 1.x")
        }
        // Free-form by definition: nothing in them asks Ferry to do anything.
        _ = try config.optional(
            "annotations",
            Value(expected: "an object of strings") { $0 as? [String: String] }
        )

        // The OCI defaults for what a bundle leaves out are empty, unlike `ferry container run`'s.
        var spec = ContainerSpec(
            layers: [],
            arguments: [],
            environment: [],
            mounts: [],
            maskedPaths: [],
            readonlyPaths: [],
            capabilities: ContainerSpec.Capabilities(bounding: [], effective: [], permitted: []),
            noNewPrivileges: false,
            seccomp: true,
            runsInit: false
        )
        guard let process = try config.object("process") else { throw OCIBundleError.invalid("process", "an object") }
        try read(process: process, into: &spec)
        guard let root = try config.object("root") else { throw OCIBundleError.invalid("root", "an object") }
        try root.check(known: ["path", "readonly"])
        let rootPath: String = try root.required("path", .string)
        guard !rootPath.isEmpty else { throw OCIBundleError.invalid("root.path", "a path") }
        spec.layers = [resolve(rootPath)]
        spec.readonlyRoot = try root.optional("readonly", .bool) ?? false
        spec.mounts = try config.objects("mounts").map(mount)
        try read(linux: config.object("linux"), into: &spec)

        if let hostname: String = try config.optional("hostname", .string), !hostname.isEmpty {
            guard spec.namespaces.contains(.uts) else {
                throw OCIBundleError.field("hostname", "hostname needs a uts namespace in linux.namespaces")
            }
            spec.hostname = hostname
        }
        return spec
    }

    private func read(process: JSONObject, into spec: inout ContainerSpec) throws {
        try process.check(
            known: ["terminal", "user", "args", "env", "cwd", "capabilities", "rlimits", "noNewPrivileges"],
            refused: [
                "consoleSize": "Ferry allocates no terminal",
                "commandLine": "it is for Windows",
                "apparmorProfile": "Ferry applies no AppArmor profile",
                "selinuxLabel": "Ferry applies no SELinux label",
                "oomScoreAdj": "Ferry leaves the OOM score as it is",
                "scheduler": "Ferry does not set a scheduling policy",
                "ioPriority": "Ferry does not set an I/O priority",
                "execCPUAffinity": "linux.resources.cpu.cpus sets the CPUs",
            ]
        )
        if try process.optional("terminal", .bool) == true {
            throw OCIBundleError.field(
                "process.terminal",
                "process.terminal: true needs a terminal, which Ferry does not allocate; set it to false"
            )
        }
        spec.arguments = try process.required(
            "args",
            Value(expected: "a non-empty array of strings") { raw in
                (raw as? [String]).flatMap { $0.first?.isEmpty == false ? $0 : nil }
            }
        )
        spec.environment =
            try process.optional(
                "env",
                Value(expected: "an array of KEY=value strings") { raw in
                    (raw as? [String]).flatMap { $0.allSatisfy { $0.dropFirst().contains("=") } ? $0 : nil }
                }
            ) ?? []
        spec.workingDirectory = try process.required("cwd", .absolutePath)

        guard let user = try process.object("user") else { throw OCIBundleError.invalid("process.user", "an object") }
        try user.check(
            known: ["uid", "gid", "additionalGids"],
            refused: ["umask": "Ferry does not set the umask", "username": "it is for Windows"]
        )
        spec.user = ContainerSpec.User(
            uid: try user.required("uid", .integer),
            gid: try user.required("gid", .integer),
            additionalGids: try user.optional("additionalGids", .integers) ?? []
        )

        if let capabilities = try process.object("capabilities") {
            try capabilities.check(known: ["bounding", "effective", "inheritable", "permitted", "ambient"])
            func set(_ key: String) throws -> Set<Capability> {
                let names = try capabilities.optional(key, .strings) ?? []
                return Set(
                    try names.enumerated().map { index, name in
                        guard let capability = Capability(name: name) else {
                            let path = "\(capabilities.path(key))[\(index)]"
                            throw OCIBundleError.field(path, "\(path): unknown capability \(name)")
                        }
                        return capability
                    }
                )
            }
            spec.capabilities = ContainerSpec.Capabilities(
                bounding: try set("bounding"),
                effective: try set("effective"),
                permitted: try set("permitted"),
                inheritable: try set("inheritable"),
                ambient: try set("ambient")
            )
        }

        for rlimit in try process.objects("rlimits") {
            try rlimit.check(known: ["type", "hard", "soft"])
            let type: String = try rlimit.required("type", .string)
            let typePath = rlimit.path("type")
            guard Self.resourceLimits.contains(type) else {
                throw OCIBundleError.field(typePath, "\(typePath): unknown resource limit \(type)")
            }
            // setrlimit(2) takes one value per resource: a second would silently replace the first.
            guard !spec.resourceLimits.contains(where: { $0.type == type }) else {
                throw OCIBundleError.field(typePath, "\(typePath): \(type) is set twice")
            }
            let limit = ContainerSpec.ResourceLimit(
                type: type,
                soft: try rlimit.required("soft", .integer),
                hard: try rlimit.required("hard", .integer)
            )
            guard limit.soft <= limit.hard else {
                throw OCIBundleError.invalid(rlimit.path("soft"), "at most hard (\(limit.hard))")
            }
            spec.resourceLimits.append(limit)
        }
        spec.noNewPrivileges = try process.optional("noNewPrivileges", .bool) ?? false
    }

    private func mount(_ mount: JSONObject) throws -> ContainerSpec.Mount {
        try mount.check(
            known: ["destination", "type", "source", "options"],
            refused: [
                "uidMappings": "Ferry makes no ID-mapped mounts", "gidMappings": "Ferry makes no ID-mapped mounts",
            ]
        )
        let destination: String = try mount.required("destination", .absolutePath)
        let options: [String] = try mount.optional("options", .strings) ?? []
        let given: String? = try mount.optional("type", .string)
        let source: String? = try mount.optional("source", .string)
        // The kernel ignores the type of a bind mount, and runc and crun read the option alike.
        if options.contains("bind") || options.contains("rbind") || given == "bind" {
            guard given == nil || given == "none" || given == "bind" else {
                throw OCIBundleError.field(
                    mount.path("type"),
                    "\(mount.path("type")): the bind mount at \(destination) has type \(given ?? ""), not bind or none"
                )
            }
            guard let source, !source.isEmpty else {
                throw OCIBundleError.invalid(mount.path("source"), "the host path of the bind mount at \(destination)")
            }
            return ContainerSpec.Mount(
                type: "bind",
                source: resolve(source),
                destination: destination,
                options: options
            )
        }
        guard let type = given, Self.mountTypes.contains(type) else {
            throw OCIBundleError.field(
                mount.path("type"),
                "\(mount.path("type")): \(given ?? "no type") (the mount at \(destination)) is not implemented by "
                    + "Ferry, which mounts bind, proc, tmpfs, sysfs, devpts, mqueue and cgroup"
            )
        }
        return ContainerSpec.Mount(type: type, source: source ?? type, destination: destination, options: options)
    }

    /// `cgroupsPath` is accepted and ignored: Ferry names the container's cgroup itself.
    private func read(linux: JSONObject?, into spec: inout ContainerSpec) throws {
        let linux = linux ?? JSONObject(fields: [:], path: "linux")
        try linux.check(
            known: [
                "namespaces", "uidMappings", "gidMappings", "resources", "cgroupsPath", "rootfsPropagation",
                "maskedPaths", "readonlyPaths",
            ],
            refused: [
                "sysctl": "Ferry sets no sysctls",
                "seccomp": "Ferry applies its own seccomp filter",
                "devices": Self.devices,
                "intelRdt": "Ferry does not use Intel RDT",
                "personality": "Ferry does not set the execution domain",
                "mountLabel": "Ferry applies no SELinux label",
                "timeOffsets": "Ferry makes no time namespace",
                "memoryPolicy": "Ferry does not set a NUMA memory policy",
                "netDevices": "Ferry moves no network device into the container",
            ]
        )
        _ = try linux.optional("cgroupsPath", .string)

        var namespaces: Set<ContainerSpec.Namespace> = []
        for namespace in try linux.objects("namespaces") {
            if namespace.has("path") {
                throw OCIBundleError.field(
                    namespace.path("path"),
                    "joining an existing namespace (\(namespace.path("path"))) is not implemented by Ferry; "
                        + "remove the path to make a new one"
                )
            }
            try namespace.check(known: ["type"])
            let name: String = try namespace.required("type", .string)
            let typePath = namespace.path("type")
            if name == "time" {
                throw OCIBundleError.field(typePath, "\(typePath): time namespaces are not implemented by Ferry")
            }
            guard let type = ContainerSpec.Namespace(rawValue: name) else {
                throw OCIBundleError.invalid(typePath, "one of pid, network, ipc, uts, mount, user and cgroup")
            }
            guard namespaces.insert(type).inserted else {
                throw OCIBundleError.field(typePath, "\(typePath): \(name) is listed twice")
            }
        }
        guard namespaces.contains(.mount) else {
            throw OCIBundleError.field(
                "linux.namespaces",
                "linux.namespaces must include mount (Ferry mounts the container's root in a namespace of its own)"
            )
        }
        spec.namespaces = namespaces
        spec.network = namespaces.contains(.network) ? .none : .host
        spec.publish = []

        spec.uidMappings = try idMappings(linux, "uidMappings", user: namespaces.contains(.user))
        spec.gidMappings = try idMappings(linux, "gidMappings", user: namespaces.contains(.user))
        spec.maskedPaths = try linux.optional("maskedPaths", .absolutePaths) ?? []
        spec.readonlyPaths = try linux.optional("readonlyPaths", .absolutePaths) ?? []

        // Ferry makes every mount private; slave differs only in taking in the host's later mounts.
        if let propagation: String = try linux.optional("rootfsPropagation", .string) {
            let path = linux.path("rootfsPropagation")
            if propagation == "shared" || propagation == "rshared" {
                throw OCIBundleError.field(
                    path,
                    "\(path) \(propagation) is not implemented by Ferry; use private or slave "
                        + "(Ferry keeps the container's mounts to itself)"
                )
            }
            guard ["private", "rprivate", "slave", "rslave"].contains(propagation) else {
                throw OCIBundleError.invalid(path, "private, rprivate, slave or rslave")
            }
        }
        if let resources = try linux.object("resources") {
            spec.resources = try self.resources(resources)
        }
    }

    private func idMappings(_ linux: JSONObject, _ key: String, user: Bool) throws -> [ContainerSpec.IDMapping] {
        let mappings = try linux.objects(key).map { mapping in
            try mapping.check(known: ["containerID", "hostID", "size"])
            return ContainerSpec.IDMapping(
                containerID: try mapping.required("containerID", .integer),
                hostID: try mapping.required("hostID", .integer),
                size: try mapping.required("size", .integer)
            )
        }
        guard mappings.isEmpty || user else {
            throw OCIBundleError.field(linux.path(key), "\(linux.path(key)) needs a user namespace in linux.namespaces")
        }
        return mappings
    }

    private func resources(_ resources: JSONObject) throws -> ContainerSpec.Resources {
        let onlyLimits = "Ferry limits only memory, pids and cpu"
        try resources.check(
            known: ["devices", "memory", "cpu", "pids"],
            refused: [
                "blockIO": onlyLimits, "hugepageLimits": onlyLimits, "network": onlyLimits, "rdma": onlyLimits,
                "unified": onlyLimits,
            ]
        )
        var result = ContainerSpec.Resources()
        if let memory = try resources.object("memory") {
            let only = "Ferry sets only memory.limit and memory.swap"
            try memory.check(
                known: ["limit", "swap"],
                refused: [
                    "reservation": only, "kernel": only, "kernelTCP": only, "swappiness": only,
                    "disableOOMKiller": only, "useHierarchy": only, "checkBeforeUpdate": only,
                ]
            )
            result.memory = try limit(memory, "limit")
            result.memoryAndSwap = try limit(memory, "swap")
            if let limit = result.memory, let swap = result.memoryAndSwap, swap < limit {
                throw OCIBundleError.invalid(memory.path("swap"), "at least memory.limit (it counts memory and swap)")
            }
        }
        if let pids = try resources.object("pids") {
            try pids.check(known: ["limit"])
            result.pids = try limit(pids, "limit")
        }
        if let cpu = try resources.object("cpu") {
            let only = "Ferry sets only cpu.shares, cpu.quota, cpu.period and cpu.cpus"
            try cpu.check(
                known: ["shares", "quota", "period", "cpus"],
                refused: [
                    "burst": only, "realtimeRuntime": only, "realtimePeriod": only, "mems": only,
                    "idle": only,
                ]
            )
            let shares: UInt64? = try cpu.optional("shares", .integer)
            if let shares, shares != 0 {
                guard ContainerFlags.cpuShareRange.contains(shares) else {
                    throw OCIBundleError.invalid(cpu.path("shares"), "from 2 to 262144 (0 leaves the default)")
                }
                result.cpuShares = shares
            }
            result.cpuQuota = try limit(cpu, "quota")
            let period: UInt64? = try cpu.optional("period", .integer)
            result.cpuPeriod = period == 0 ? nil : period
            let cpus: String? = try cpu.optional("cpus", .string)
            result.cpus = cpus?.isEmpty == true ? nil : cpus
        }
        for rule in try resources.objects("devices") {
            try device(rule)
        }
        return result
    }

    /// -1 is "no limit" in the spec, and 0 is what Go writes for "not set": both leave the limit off.
    private func limit(_ object: JSONObject, _ key: String) throws -> Int64? {
        guard let value: Int64 = try object.optional(key, .integer) else { return nil }
        guard value >= -1 else { throw OCIBundleError.invalid(object.path(key), "-1 (no limit) or a positive integer") }
        return value > 0 ? value : nil
    }

    /// Ferry's /dev is fixed, so a rule is accepted only when that /dev already keeps it: a deny of
    /// everything (what the allows then open is all there is), or an allow of a device it holds.
    private func device(_ rule: JSONObject) throws {
        try rule.check(known: ["allow", "type", "major", "minor", "access"])
        let allow: Bool = try rule.required("allow", .bool)
        let type: String = try rule.optional("type", .string) ?? "a"
        let major: Int64 = try rule.optional("major", .integer) ?? -1
        let minor: Int64 = try rule.optional("minor", .integer) ?? -1
        if let access: String = try rule.optional("access", .string),
            access.isEmpty || !access.allSatisfy({ "rwm".contains($0) })
        {
            throw OCIBundleError.invalid(rule.path("access"), "made of r, w and m")
        }
        guard ["a", "c", "b"].contains(type) else { throw OCIBundleError.invalid(rule.path("type"), "a, c or b") }
        let standard: Set<[Int64]> = [[1, 3], [1, 5], [1, 7], [1, 8], [1, 9], [5, 0], [5, 1], [5, 2]]
        let accepted =
            allow
            ? type == "c" && (standard.contains([major, minor]) || major == 136)
            : type == "a" && major == -1 && minor == -1
        guard accepted else {
            let device = "\(type) \(major < 0 ? "*" : "\(major)"):\(minor < 0 ? "*" : "\(minor)")"
            throw OCIBundleError.field(
                rule.path,
                "\(rule.path) \(allow ? "allows" : "denies") \(device), which Ferry does not implement; "
                    + "\(Self.devices), and it denies only all devices at once"
            )
        }
    }

    /// A path of the bundle, relative to its directory unless absolute.
    private func resolve(_ path: String) -> String {
        if path.hasPrefix("/") { return path }
        let parts = (bundle + "/" + path).split(separator: "/").filter { $0 != "." }
        return "/" + parts.joined(separator: "/")
    }
}

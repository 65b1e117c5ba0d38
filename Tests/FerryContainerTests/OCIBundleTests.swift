import Foundation
import Testing

@testable import FerryContainer

/// What `crun spec` writes, with `terminal` set to false.
private let crunSpec = """
    {"ociVersion": "1.0.0",
     "process": {"terminal": false, "user": {"uid": 0, "gid": 0}, "args": ["sh"],
      "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "TERM=xterm"], "cwd": "/",
      "capabilities": {
       "bounding": ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"],
       "effective": ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"], "inheritable": [],
       "permitted": ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"],
       "ambient": ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]},
      "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}], "noNewPrivileges": true},
     "root": {"path": "rootfs", "readonly": true},
     "hostname": "crun",
     "mounts": [
      {"destination": "/proc", "type": "proc", "source": "proc"},
      {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
       "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
      {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
       "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
      {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
       "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
      {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]},
      {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]},
      {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
       "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]}],
     "linux": {
      "resources": {"devices": [{"allow": false, "access": "rwm"}]},
      "namespaces": [{"type": "pid"}, {"type": "network"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"}],
      "maskedPaths": ["/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
       "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware", "/proc/scsi"],
      "readonlyPaths": ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]}}
    """

/// crun's spec with the first `text` replaced by `replacement`, parsed as the bundle /bundles/box.
private func parse(replacing text: String = "", with replacement: String = "") throws -> ContainerSpec {
    var json = crunSpec
    if !text.isEmpty {
        let range = try #require(json.range(of: text))
        json.replaceSubrange(range, with: replacement)
    }
    return try OCIBundle.parse(Array(json.utf8), bundle: "/bundles/box")
}

/// The error parsing crun's spec edited so gives.
private func refusal(_ text: String, _ replacement: String) throws -> OCIBundleError {
    try #require(throws: OCIBundleError.self) { try parse(replacing: text, with: replacement) }
}

@Test func crunDefaultSpec() throws {
    let spec = try parse()
    var expectedMounts = ContainerSpec.defaultMounts
    expectedMounts[2].options.append("gid=5")
    expectedMounts[0].options = []
    expectedMounts.append(
        .init(
            type: "cgroup",
            source: "cgroup",
            destination: "/sys/fs/cgroup",
            options: ["nosuid", "noexec", "nodev", "relatime", "ro"]
        )
    )
    #expect(spec.mounts == expectedMounts)
    #expect(spec.layers == ["/bundles/box/rootfs"] && spec.readonlyRoot)
    #expect(spec.arguments == ["sh"] && spec.workingDirectory == "/" && spec.hostname == "crun")
    #expect(spec.environment.last == "TERM=xterm")
    #expect(spec.namespaces == [.pid, .network, .ipc, .uts, .mount] && spec.network == .none)
    let three = Set(["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"].compactMap(Capability.init(name:)))
    #expect(three.count == 3)
    #expect(
        spec.capabilities == .init(bounding: three, effective: three, permitted: three, inheritable: [], ambient: three)
    )
    #expect(spec.resourceLimits == [.init(type: "RLIMIT_NOFILE", soft: 1024, hard: 1024)])
    #expect(spec.maskedPaths == ContainerSpec.defaultMaskedPaths)
    #expect(spec.readonlyPaths == ContainerSpec.defaultReadonlyPaths)
    #expect(spec.noNewPrivileges && spec.seccomp && !spec.runsInit && spec.user == .init())
    #expect(spec.resources.isEmpty && spec.uidMappings.isEmpty)
}

@Test(arguments: [
    (#""linux": {"#, #""linux": {"seccomp": {"defaultAction": "SCMP_ACT_ERRNO"},"#, "linux.seccomp"),
    (#""hostname""#, #""hooks": {"prestart": []}, "hostname""#, "hooks"),
    (#""terminal": false"#, #""terminal": true"#, "process.terminal"),
    (#"{"type": "ipc"}"#, #"{"type": "ipc", "path": "/proc/1/ns/ipc"}"#, "linux.namespaces[2].path"),
    (#""cwd": "/","#, #""cwd": "/", "foo": 1,"#, "process.foo"),
    ("CAP_KILL", "CAP_FLY", "process.capabilities.bounding[1]"),
    (
        #""access": "rwm"}"#, #""access": "rwm"}, {"allow": true, "type": "b", "major": 8, "minor": 0}"#,
        "linux.resources.devices[1]"
    ),
    (#"{"type": "mount"}"#, #"{"type": "time"}"#, "linux.namespaces[4].type"),
    (#""uid": 0"#, #""uid": 1.5"#, "process.user.uid"),
    (#""gid": 0"#, #""gid": -1"#, "process.user.gid"),
    (#""readonly": true}"#, #""readonly": true}, "domainname": "box""#, "domainname"),
    (#""type": "proc""#, #""type": "nfs""#, "mounts[0].type"),
    (#""resources": {"#, #""resources": {"cpu": {"shares": 1}, "#, "linux.resources.cpu.shares"),
])
func refusedFieldsAreNamed(text: String, replacement: String, path: String) throws {
    let error = try refusal(text, replacement)
    #expect(error.path == path)
    #expect(error.description.contains(path), "\(error)")
}

@Test func cpuSharesAreTheContainersWeight() throws {
    let spec = try parse(
        replacing: #""resources": {"#,
        with: #""resources": {"cpu": {"shares": 512, "quota": 50000}, "#
    )
    #expect(spec.resources.cpuShares == 512 && spec.resources.cpuQuota == 50000)
}

@Test func messages() throws {
    #expect(
        try refusal(#""linux": {"#, #""linux": {"seccomp": {},"#).description
            == "config.json: linux.seccomp is not implemented by Ferry; "
            + "remove it (Ferry applies its own seccomp filter)"
    )
    #expect(try refusal(#""1.0.0""#, #""2.0.0""#).description == "config.json: ociVersion 2.0.0 is not 1.x")
    #expect(
        try refusal(#""args": ["sh"],"#, "").description
            == "config.json: process.args must be a non-empty array of strings"
    )
    #expect(try refusal(#""uid": 0"#, #""uid": 1.5"#).description.hasSuffix("must be an integer from 0 to 4294967295"))
    let invalid = try #require(throws: OCIBundleError.self) { try OCIBundle.parse(Array("{".utf8), bundle: "/") }
    #expect(invalid.description.hasPrefix("config.json is not valid JSON: "), "\(invalid)")
}

@Test func relativePathsAreTakenFromTheBundle() throws {
    let spec = try parse(
        replacing: #""path": "rootfs""#,
        with: #""path": "./images/../alpine""#
    )
    #expect(spec.layers == ["/bundles/box/images/../alpine"])
    let bind = try parse(
        replacing: #"{"destination": "/proc""#,
        with: #"{"destination": "/data", "source": "data", "options": ["rbind", "ro"]}, {"destination": "/proc""#
    )
    #expect(
        bind.mounts.first
            == .init(type: "bind", source: "/bundles/box/data", destination: "/data", options: ["rbind", "ro"])
    )
    #expect(try parse(replacing: #""path": "rootfs""#, with: #""path": "/srv/root""#).layers == ["/srv/root"])
}

@Test func loadReadsConfigJSON() throws {
    let directory = FileManager.default.temporaryDirectory.appendingPathComponent("oci-\(UUID())").path
    try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: directory) }
    let missing = try #require(throws: OCIBundleError.self) { try OCIBundle.load(directory: directory) }
    #expect(missing.description == "cannot read \(directory)/config.json: No such file or directory")
    try Data(crunSpec.utf8).write(to: URL(fileURLWithPath: directory + "/config.json"))
    #expect(try OCIBundle.load(directory: directory).layers == [directory + "/rootfs"])
}

import FerryPosix
import FerryTestSupport
import Foundation
import Testing

#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// Why the container tests cannot run here, or nil.
private let containersMissing: String? = {
    if geteuid() != 0 { return "containers need root here (namespaces, overlay mounts, cgroups)" }
    if !FileManager.default.isExecutableFile(atPath: "/bin/busybox") {
        return "the busybox root file system needs /bin/busybox (apt-get install busybox-static)"
    }
    return nil
}()

/// `ferry container` as a user runs it, as root, on the busybox root file system that
/// `Examples/rootfs.sh` builds. After each test nothing of the container is left on the host: no
/// record, cgroup, veth, subnet lease or process.
@Suite(.serialized, .disabled(if: containersMissing != nil, "\(containersMissing ?? "")"))
struct ContainerProcessTests {
    /// Built once for the suite, from Debian's busybox-static.
    static let rootfs: String = {
        let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
        let directory = NSTemporaryDirectory() + "ferry-rootfs-\(getpid())"
        _ = try? ChildProcess.run([repository.appendingPathComponent("Examples/rootfs.sh").path, directory])
        return directory
    }()

    let temporary: TemporaryDirectory
    var state: String { self.temporary.path + "/state" }

    init() throws {
        self.temporary = try TemporaryDirectory()
    }

    /// Runs `ferry container ARGUMENTS` to its end: its exit status and everything it wrote.
    func container(_ arguments: [String]) throws -> (status: Int32, output: String) {
        let ferry = try FerryProcess(
            ["container"] + [arguments[0], "--state", self.state] + arguments.dropFirst(),
            errors: .merged
        )
        return ferry.finish()
    }

    func run(_ flags: [String], _ command: String) throws -> (status: Int32, output: String) {
        try self.container(["run", "--rootfs", Self.rootfs] + flags + ["--", "sh", "-c", command])
    }

    /// Starts a node that runs containers, ready once registered at the daemon; its log goes to
    /// `NAME.log` in the test's directory, for ``nodeLogs(_:)``.
    func startNode(
        _ name: String,
        _ flags: [String],
        environment: [String: String] = [:]
    ) throws -> FerryProcess {
        let node = try FerryProcess(
            ["node", "--name", name, "--allow-unsigned"] + flags,
            errors: .file(self.temporary.path + "/\(name).log"),
            environment: environment
        )
        while let line = node.nextLine(), !line.contains("registered") {}
        node.drainOutput()
        return node
    }

    /// How each node's log ends, for a failure's message: a crash's own lines (its reason, then
    /// the top of its backtrace) before the last lines.
    func nodeLogs(_ names: [String]) -> String {
        names.map { name in
            let log = (try? String(contentsOfFile: self.temporary.path + "/\(name).log", encoding: .utf8)) ?? ""
            let lines = log.split(separator: "\n")
            let crash = lines.firstIndex { $0.contains("Fatal error") || $0.contains("Crash") || $0.contains("fatal") }
            let reason = crash.map { lines[$0..<min($0 + 12, lines.count)].joined(separator: "\n") + "\n...\n" } ?? ""
            return "\(name)'s log ends:\n" + reason + lines.suffix(15).joined(separator: "\n")
        }.joined(separator: "\n")
    }

    /// Nothing of any container is left on the host.
    func expectNothingLeft(sourceLocation: SourceLocation = #_sourceLocation) {
        let records = (try? FileManager.default.contentsOfDirectory(atPath: self.state)) ?? []
        #expect(records.isEmpty, "records left: \(records)", sourceLocation: sourceLocation)
        for controller in ["memory", "pids", "cpu", "freezer", "unified"] {
            let cgroups =
                (try? FileManager.default.contentsOfDirectory(atPath: "/sys/fs/cgroup/\(controller)/ferry-containers"))
                ?? []
            // Named ID.PID by the monitor's pid: one whose monitor is gone was left behind.
            let left = cgroups.filter { name in
                guard let pid = Int32(name.split(separator: ".").last ?? "") else { return false }
                return kill(pid, 0) != 0
            }
            #expect(left.isEmpty, "cgroups left in \(controller): \(left)", sourceLocation: sourceLocation)
        }
        let links = (try? FileManager.default.contentsOfDirectory(atPath: "/sys/class/net")) ?? []
        #expect(!links.contains { $0.hasPrefix("fy") }, "veth left: \(links)", sourceLocation: sourceLocation)
        // A lease whose owner is gone (a node killed by another test) is taken over by the next.
        let leases = ((try? FileManager.default.contentsOfDirectory(atPath: "/run/ferry/net")) ?? []).filter { lease in
            let owner = try? String(contentsOfFile: "/run/ferry/net/\(lease)/owner", encoding: .utf8)
            guard let pid = Int32(owner?.trimmingCharacters(in: .whitespacesAndNewlines) ?? "") else { return true }
            return kill(pid, 0) == 0
        }
        #expect(leases.isEmpty, "subnet leases left: \(leases)", sourceLocation: sourceLocation)
    }

    @Test func theProgramIsPID1OfItsOwnHostAndWritesOnlyItsUpperLayer() throws {
        let result = try self.run(
            ["--hostname", "box", "--name", "c1", "--keep"],
            "hostname; echo pid $$; ps -o pid | tail -n +2 | sort -n | tail -1; echo data > /etc/written; ls /proc/1/root/etc/written; ip -o link | cut -d: -f2"
        )
        #expect(result.status == 0)
        let lines = result.output.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }
        #expect(Array(lines.prefix(2)) == ["box", "pid 1"])
        // Only its own few processes: the highest pid it sees is small.
        #expect(lines.count > 2 && (Int(lines[2]) ?? 99) < 10)
        #expect(Array(lines.dropFirst(3).prefix(2)) == ["/proc/1/root/etc/written", "lo"])
        #expect(result.output.contains("ferry: container c1 exited with status 0"))
        // The lower layer is untouched; the write is in the kept upper layer.
        #expect(!FileManager.default.fileExists(atPath: Self.rootfs + "/etc/written"))
        #expect(FileManager.default.fileExists(atPath: self.state + "/c1/upper/etc/written"))
        let listed = try self.container(["ps", "--all"])
        #expect(listed.output.contains("c1") && listed.output.contains("exited"))
        #expect(try self.container(["rm", "c1"]).status == 0)
        self.expectNothingLeft()
    }

    @Test func theExitStatusAndSignalAreTheProgramsAndCapabilitiesAreDropped() throws {
        let failed = try self.run([], "exit 7")
        #expect(failed.status == 7 && failed.output.contains("exited with status 7"))
        // PID 1 cannot be killed from inside; under --init the program is PID 2 and can.
        let killed = try self.run(["--init"], "echo pid $$; kill -KILL $$")
        #expect(killed.output.hasPrefix("pid 2") && killed.status == 137)
        // No CAP_SYS_ADMIN: the container cannot mount; seccomp refuses module loading and kexec.
        let mounted = try self.run([], "mount -t tmpfs none /mnt 2>&1; echo status $?")
        #expect(mounted.output.contains("status 1") || mounted.output.contains("status 255"))
        let status = try self.run([], "grep CapEff /proc/self/status")
        #expect(status.output.contains("CapEff:\t00000000a80425fb"))
        self.expectNothingLeft()
    }

    @Test func mountsCannotEscapeTheRoot() throws {
        let layer = self.temporary.path + "/layer"
        try FileManager.default.createDirectory(atPath: layer, withIntermediateDirectories: true)
        try FileManager.default.createSymbolicLink(atPath: layer + "/escape", withDestinationPath: "/tmp")
        let data = self.temporary.path + "/data"
        try FileManager.default.createDirectory(atPath: data, withIntermediateDirectories: true)
        let viaSymlink = try self.run(["--layer", layer, "--mount", "\(data):/escape/inside"], "true")
        #expect(viaSymlink.status != 0)
        #expect(viaSymlink.output.contains("/escape/inside") && viaSymlink.output.contains("symbolic links"))
        #expect(!FileManager.default.fileExists(atPath: "/tmp/inside"))
        let dotDot = try self.run(["--mount", "\(data):/../../etc"], "true")
        #expect(dotDot.status != 0 && dotDot.output.contains("'..'"))
        let readOnly = try self.run(["--mount", "\(data):/data:ro"], "touch /data/x 2>&1; echo status $?")
        #expect(readOnly.output.contains("Read-only file system"))
        self.expectNothingLeft()
    }

    @Test func bombsStopAtTheirLimitsWhileANeighbourServes() async throws {
        let www = self.temporary.path + "/www"
        try FileManager.default.createDirectory(atPath: www, withIntermediateDirectories: true)
        try "neighbour\n".write(toFile: www + "/index.html", atomically: true, encoding: .utf8)
        let neighbour = try FerryProcess(["serve", "files", "--root", www, "--port", "0"])
        let port = try #require(neighbour.nextLine().flatMap(listeningAddress)).port
        let fork = try FerryProcess(
            [
                "container", "run", "--state", self.state, "--rootfs", Self.rootfs, "--pids", "32", "--cpus", "0.25",
                "--",
                "sh", "-c", "f() { f | f & }; f; sleep 2",
            ],
            errors: .merged
        )
        let memory = try FerryProcess(
            [
                "container", "run", "--state", self.state, "--rootfs", Self.rootfs, "--memory", "32M", "--cpus", "0.25",
                "--",
                "sh", "-c", "x=a; while true; do x=$x$x; done",
            ],
            errors: .merged
        )
        let (data, _) = try await URLSession.shared.data(from: URL(string: "http://127.0.0.1:\(port)/index.html")!)
        #expect(String(decoding: data, as: UTF8.self) == "neighbour\n")
        let forkOutput = fork.finish().output
        #expect(forkOutput.contains("pids limit reached (32 tasks)"))
        let (memoryStatus, memoryOutput) = memory.finish()
        #expect(memoryStatus == 137)
        #expect(memoryOutput.contains("out of memory (OOM)") && memoryOutput.contains("32 MiB"))
        let (again, _) = try await URLSession.shared.data(from: URL(string: "http://127.0.0.1:\(port)/index.html")!)
        #expect(String(decoding: again, as: UTF8.self) == "neighbour\n")
        _ = neighbour.stop(SIGTERM)
        self.expectNothingLeft()
    }

    @Test func aPublishedPortReachesAServerOnThePrivateNetwork() async throws {
        let www = self.temporary.path + "/www"
        try FileManager.default.createDirectory(atPath: www, withIntermediateDirectories: true)
        try "inside\n".write(toFile: www + "/index.html", atomically: true, encoding: .utf8)
        let server = try FerryProcess(
            [
                "container", "run", "--state", self.state, "--rootfs", Self.rootfs, "--name", "web", "--net", "private",
                "--publish", "0:8080", "--mount", "\(www):/www:ro", "--", "httpd", "-f", "-p", "8080", "-h", "/www",
            ],
            errors: .merged
        )
        let line = try #require(server.nextLine())
        let published = try #require(line.range(of: "publishes 0.0.0.0:"))
        let port = try #require(Int(line[published.upperBound...].prefix { $0.isNumber }))
        #expect(line.contains(" -> 10.89."))
        // The server inside may not be listening yet: the relay then closes that one connection.
        var body = ""
        for _ in 0..<50 where body.isEmpty {
            if let (data, _) = try? await URLSession.shared.data(
                from: URL(string: "http://127.0.0.1:\(port)/index.html")!
            ) {
                body = String(decoding: data, as: UTF8.self)
            }
        }
        #expect(body == "inside\n")
        #expect(try self.container(["stop", "--time", "0.2", "web"]).status == 0)
        server.process.waitUntilExit()
        self.expectNothingLeft()
    }

    @Test func aDetachedContainerIsListedLoggedStoppedAndRemoved() throws {
        let started = try self.container(
            [
                "run", "--detach", "--rootfs", Self.rootfs, "--memory", "64M", "--cpu-shares", "2", "--", "sh", "-c",
                "echo hello; exec sleep 60",
            ]
        )
        #expect(started.status == 0)
        let id = started.output.trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(id.count == 12)
        // The weight is written where the kernel reads it (v1 here; v2 takes it as cpu.weight 1).
        let v1 = "/sys/fs/cgroup/cpu/ferry-containers"
        if let group = (try? FileManager.default.contentsOfDirectory(atPath: v1))?.first(where: { $0.hasPrefix(id) }) {
            let shares = try String(contentsOfFile: "\(v1)/\(group)/cpu.shares", encoding: .utf8)
            #expect(shares.trimmingCharacters(in: .whitespacesAndNewlines) == "2")
        }
        let listed = try self.container(["ps", "--json"])
        #expect(listed.output.contains("\"id\":\"\(id)\"") && listed.output.contains("\"memoryLimit\":67108864"))
        #expect(try self.container(["rm", id]).output.contains("is running"))
        #expect(try self.container(["logs", String(id.prefix(4))]).output.hasPrefix("hello"))
        #expect(try self.container(["stop", "--time", "0.2", id]).status == 0)
        let ended = try self.container(["ps", "-a", "--json"])
        #expect(ended.output.contains("\"status\":\"exited\"") && ended.output.contains("\"exitCode\":137"))
        #expect(try self.container(["rm", id]).status == 0)
        self.expectNothingLeft()
    }

    @Test func killingTheMonitorTakesTheContainerWithIt() throws {
        let started = try self.container(["run", "--detach", "--rootfs", Self.rootfs, "--", "sleep", "60"])
        let id = started.output.trimmingCharacters(in: .whitespacesAndNewlines)
        let record = try String(contentsOfFile: self.state + "/\(id)/state.json", encoding: .utf8)
        let json = try #require(try JSONSerialization.jsonObject(with: Data(record.utf8)) as? [String: Any])
        let monitor = try #require(json["monitorPid"] as? Int32)
        let program = try #require(json["pid"] as? Int32)
        kill(monitor, SIGKILL)
        // The program's parent-death signal ends it; a zombie until init reaps it counts as gone.
        let gone = waitUntil {
            let status = try? String(contentsOfFile: "/proc/\(program)/stat", encoding: .utf8)
            return status == nil || status!.contains(") Z ")
        }
        #expect(gone != nil, "the program outlived its monitor")
        #expect(try self.container(["ps", "-a"]).output.contains("dead"))
        #expect(try self.container(["rm", id]).status == 0)
        self.expectNothingLeft()
    }

    @Test func badFlagsAndBundleFieldsAreRefusedByName() throws {
        let port = try self.run(["--net", "private", "--publish", "99999:80"], "true")
        #expect(port.status != 0 && port.output.contains("--publish 99999:80"))
        let shares = try self.run(["--cpu-shares", "1"], "true")
        #expect(shares.status != 0 && shares.output.contains("--cpu-shares 1"))
        let bundle = self.temporary.path + "/bundle"
        try FileManager.default.createDirectory(atPath: bundle, withIntermediateDirectories: true)
        try """
        {"ociVersion": "1.0.2", "process": {"args": ["true"], "cwd": "/", "user": {"uid": 0, "gid": 0}},
         "root": {"path": "\(Self.rootfs)"}, "linux": {"namespaces": [{"type": "mount"}], "seccomp": {}}}
        """.write(toFile: bundle + "/config.json", atomically: true, encoding: .utf8)
        let refused = try self.container(["run", "--bundle", bundle])
        #expect(refused.status != 0 && refused.output.contains("linux.seccomp"))
        self.expectNothingLeft()
    }

    /// The same bundle, as `crun spec` writes it, gives the same answers under crun and Ferry.
    @Test(.disabled(if: !FileManager.default.isExecutableFile(atPath: "/usr/bin/crun"), "crun is not installed"))
    func anOCIBundleForCrunRunsTheSameUnderFerry() throws {
        let bundle = self.temporary.path + "/oci"
        _ = try ChildProcess.run([
            "/bin/sh", "-c",
            """
            mkdir -p \(bundle) && cd \(bundle) && ln -s \(Self.rootfs) rootfs && crun spec && \
            python3 -c "import json; c=json.load(open('config.json')); c['process']['terminal']=False; \
            c['process']['args']=['sh','-c','hostname; echo \\$\\$; grep -E \\"^Cap(Eff|Bnd)\\" /proc/self/status; ulimit -n; touch /x 2>&1 | cut -d: -f3']; \
            json.dump(c, open('config.json','w'))"
            """,
        ])
        // crun refuses hybrid cgroups (v1 beside a v2 mount with a controller): hide the v2 mount.
        let (crunStatus, crunOutput) = try ChildProcess.run(
            [
                "/usr/bin/unshare", "-m", "sh", "-c",
                "umount /sys/fs/cgroup/unified 2>/dev/null; crun run --bundle \(bundle) ferry-test-\(getpid())",
            ],
            mergingErrors: true
        )
        let ferry = try self.container(["run", "--bundle", bundle])
        #expect(crunStatus == 0)
        #expect(ferry.status == 0)
        let ferryLines = ferry.output.split(separator: "\n").filter { !$0.hasPrefix("ferry: container") }
        #expect(ferryLines == crunOutput.split(separator: "\n"))
        #expect(ferryLines.first == "crun")
        self.expectNothingLeft()
    }

    /// A superserver service whose program runs in a container of its own per connection: the
    /// connection is the program's standard input and output, inside its namespaces and limits.
    @Test func theSuperserverStartsAContainerPerConnection() throws {
        let configuration = self.temporary.path + "/superserver.yaml"
        try """
        endpoints: off
        services:
          - name: boxed
            listen: 127.0.0.1:0
            mode: nowait
            program: /bin/sh
            args: ["-c", "hostname; echo pid $$; cat"]
            container: {rootfs: \(Self.rootfs), memory: 64M, pids: 16}
        """.write(toFile: configuration, atomically: true, encoding: .utf8)
        let superserver = try FerryProcess(["superserver", "--config", configuration])
        let line = try #require(superserver.nextLine())
        #expect(line.hasSuffix(" boxed"))
        let port = try #require(Int(line.split(separator: " ")[2].split(separator: ":")[1]))
        let client = try TestClient(port: port)
        client.send(Array("hello\n".utf8))
        client.finishSending()
        #expect([client.line(), client.line(), client.line()] == ["ferry", "pid 1", "hello"])
        #expect(client.isClosedByPeer)
        _ = superserver.stop(SIGTERM)
        let bad = configuration + ".bad"
        try """
        endpoints: off
        services:
          - {name: b, listen: 127.0.0.1:0, mode: nowait, program: /bin/nothing, container: {rootfs: \(Self.rootfs)}}
        """.write(toFile: bad, atomically: true, encoding: .utf8)
        let refused = try FerryProcess(["superserver", "--config", bad], errors: .merged)
        let output = refused.finish().output
        #expect(output.contains("'/bin/nothing' is not an executable file given by absolute path in \(Self.rootfs)"))
    }

    /// Without root, the container's root is root only inside a user namespace of its own, and
    /// limits, which need cgroups this user cannot write, are refused with the reason.
    @Test(.disabled(if: !FileManager.default.isExecutableFile(atPath: "/usr/bin/setpriv"), "setpriv is not installed"))
    func rootlessModeMapsTheUserToRootInside() throws {
        let asNobody = ["/usr/bin/setpriv", "--reuid", "65534", "--regid", "65534", "--clear-groups"]
        func rootless(_ arguments: [String]) throws -> (Int32, String) {
            let ferry = try FerryProcess(["container", "run"] + arguments, errors: .merged, under: asNobody)
            return ferry.finish()
        }
        let (status, output) = try rootless(["--rootfs", Self.rootfs, "--", "sh", "-c", "id -u; echo $$"])
        #expect(status == 0)
        #expect(output.hasPrefix("0\n1\n"))
        let (limited, refusal) = try rootless(["--rootfs", Self.rootfs, "--memory", "64M", "--", "true"])
        #expect(limited != 0 && refusal.contains("cannot make the cgroup") && refusal.contains("run as root"))
    }

    /// `ferry spawn --container`: a container is a process of the cluster, claimed at the daemon,
    /// listed by `ferry ps`, its output read by `ferry logs`, its status by `ferry wait`; a node
    /// started without --allow-containers refuses it.
    @Test func aNodeRunsAContainerAsAProcessOfTheCluster() throws {
        let daemon = try FerryProcess(["endpointd", "--port", "0"])
        let address = try #require(daemon.nextLine().flatMap(listeningAddress))
        let endpoints = ["--endpoints", "\(address)"]
        var nodes: [FerryProcess] = []
        for (name, flags) in [("open", ["--allow-containers"]), ("open2", ["--allow-containers"]), ("closed", [])] {
            nodes.append(try self.startNode(name, flags + endpoints))
        }
        func ferry(_ arguments: [String]) throws -> (Int32, String) {
            let process = try FerryProcess([arguments[0]] + endpoints + arguments.dropFirst(), errors: .merged)
            return process.finish()
        }
        let spawn = ["spawn", "--container", "--rootfs", Self.rootfs, "--memory", "32M"]
        let (started, name) = try ferry(
            spawn + ["--node", "open", "--name", "boxed", "--", "sh", "-c", "echo from $(hostname); exit 3"]
        )
        #expect(started == 0 && name == "boxed", "\(name)")
        let (_, outcome) = try ferry(["wait", "boxed"])
        #expect(outcome.contains("exited with status 3"))
        #expect(try ferry(["logs", "boxed"]).1 == "from boxed")
        let (_, listed) = try ferry(["ps", "--json"])
        #expect(listed.contains("\"digest\":\"container\"") && listed.contains("\"name\":\"boxed\""))
        #expect(try ferry(["kill", "boxed"]).0 == 0)
        #expect(!(try ferry(["ps", "--json"]).1.contains("boxed")))
        // A weak move: frozen, its writable layer packed, started again on the other node.
        let counter =
            "n=$(cat /root/n 2>/dev/null || echo 0); echo $((n+1)) > /root/n; echo run $((n+1)) on $(hostname); exec sleep 60"
        #expect(try ferry(spawn + ["--node", "open", "--name", "mover", "--", "sh", "-c", counter]).0 == 0)
        let strong = try ferry(["migrate", "mover", "--to", "open2"])
        #expect(strong.0 != 0 && strong.1.contains("moves weakly only"))
        let (moved, report) = try ferry(["migrate", "mover", "--to", "open2", "--mode", "weak", "--json"])
        #expect(moved == 0 && report.contains("\"to\":\"open2\"") && report.contains("\"mode\":\"weak\""))
        let arrived = waitUntil { (try? ferry(["logs", "mover"]).1) == "run 2 on mover" }
        #expect(arrived != nil, "the container did not start again from its moved layer")
        let (_, after) = try ferry(["ps", "--json"])
        #expect(after.contains("\"moves\":1") && after.contains("\"node\":\"open2\""))
        #expect(try ferry(["kill", "mover"]).0 == 0)
        let (refused, reason) = try ferry(spawn + ["--node", "closed", "--", "true"])
        #expect(refused != 0 && reason.contains("--allow-containers"), "\(reason)")
        for node in nodes { _ = node.stop(SIGTERM) }
        _ = daemon.stop(SIGTERM)
    }

    @Test func aContainerThatPublishesAPortIsABackendTheSwitchDiscovers() async throws {
        let daemon = try FerryProcess(["endpointd", "--port", "0"])
        let address = try #require(daemon.nextLine().flatMap(listeningAddress))
        let endpoints = ["--endpoints", "\(address)"]
        var nodes: [FerryProcess] = []
        for name in ["n1", "n2"] {
            nodes.append(try self.startNode(name, ["--allow-containers"] + endpoints))
        }
        let front = try FerryProcess(
            ["switch", "--mode", "l7", "--listen", "127.0.0.1:0", "--discover", "web", "--health-interval", "0.2"]
                + endpoints
        )
        let switchAddress = try #require(front.nextLine().flatMap(listeningAddress))
        front.drainOutput()
        func ferry(_ arguments: [String]) throws -> (Int32, String) {
            try FerryProcess([arguments[0]] + endpoints + arguments.dropFirst(), errors: .merged).finish()
        }
        func get() async -> (Int, String)? {
            guard
                let (data, response) = try? await URLSession.shared.data(
                    from: URL(string: "http://\(switchAddress)/index.html")!
                ), let http = response as? HTTPURLResponse
            else { return nil }
            return (http.statusCode, String(decoding: data, as: UTF8.self))
        }
        /// Asks through the switch until `answered` holds: a few seconds alone, up to a minute
        /// beside the other suites (a weak move restarts the container and registers it anew).
        func eventually(_ answered: ((Int, String)) -> Bool) async -> Bool {
            let deadline = ContinuousClock.now + .seconds(60)
            while ContinuousClock.now < deadline {
                if let answer = await get(), answered(answer) { return true }
                try? await Task.sleep(for: .milliseconds(100))
            }
            return false
        }
        // The server writes its own name (its hostname) as the page.
        let serve = "mkdir -p /www && hostname > /www/index.html && exec httpd -f -p 8080 -h /www"
        for (name, node) in [("web1", "n1"), ("web2", "n2")] {
            let (status, output) = try ferry([
                "spawn", "--container", "--rootfs", Self.rootfs, "--node", node, "--name", name, "--net", "private",
                "--publish", "0:8080", "--service", "web", "--", "sh", "-c", serve,
            ])
            #expect(status == 0 && output == name, "\(output)")
        }
        let (_, listed) = try ferry(["ps", "--json"])
        #expect(listed.contains("publishes 0.0.0.0:") && listed.contains("as web"), "\(listed)")
        var seen = Set<String>()
        let both = await eventually { answer in
            if answer.0 == 200 { seen.insert(answer.1) }
            return seen == ["web1\n", "web2\n"]
        }
        #expect(both, "the switch reached \(seen), not both containers")
        // Moved, it is published and registered again on its new node.
        let moved = try ferry(["migrate", "web1", "--to", "n2", "--mode", "weak"])
        #expect(moved.0 == 0, "\(moved.1)\n\(self.nodeLogs(["n1", "n2"]))")
        #expect(try ferry(["kill", "web2"]).0 == 0)
        #expect(await eventually { $0 == (200, "web1\n") }, "the moved container is not behind the switch")
        // Gone, it leaves the switch's backends.
        #expect(try ferry(["kill", "web1"]).0 == 0)
        #expect(await eventually { $0.0 == 503 }, "the switch still has a backend")
        // A node that stops takes down its containers and what they held on the host.
        #expect(
            try ferry([
                "spawn", "--container", "--rootfs", Self.rootfs, "--node", "n1", "--net", "private", "--publish",
                "0:8080", "--", "sleep", "60",
            ]).0 == 0
        )
        _ = front.stop(SIGTERM)
        for node in nodes { #expect(node.stop(SIGTERM) == 0) }
        _ = daemon.stop(SIGTERM)
        self.expectNothingLeft()
    }

    /// `kill -9` of the target once it took the claim over, and of the source once the target has
    /// it: the container runs on exactly one node, as a guest's move promises.
    @Test(arguments: [("target:commit", "n1"), ("source:source-release", "n2")])
    func aContainerWhoseMoveIsCutByACrashRunsOnExactlyOneNode(crashAt: String, survivor: String) throws {
        let daemon = try FerryProcess(["endpointd", "--port", "0"])
        let address = try #require(daemon.nextLine().flatMap(listeningAddress))
        let endpoints = ["--endpoints", "\(address)"]
        var nodes: [String: FerryProcess] = [:]
        for name in ["n1", "n2"] {
            let side = name == "n1" ? "source" : "target"
            nodes[name] = try self.startNode(
                name,
                ["--allow-containers"] + endpoints,
                environment: crashAt.hasPrefix(side) ? ["FERRY_CRASH_AT": crashAt] : [:]
            )
        }
        func ferry(_ arguments: [String]) throws -> (Int32, String) {
            try FerryProcess([arguments[0]] + endpoints + arguments.dropFirst(), errors: .merged).finish()
        }
        // A sleep of a length no other test uses, to count its copies on the host.
        let marker = "\(600 + Int(getpid() % 300))"
        let spawned = try ferry([
            "spawn", "--container", "--rootfs", Self.rootfs, "--node", "n1", "--name", "mover", "--", "sleep", marker,
        ])
        #expect(spawned.0 == 0, "\(spawned.1)\n\(self.nodeLogs(["n1"]))")
        // The move is cut by the crash: it may or may not report success.
        let moved = try ferry(["migrate", "mover", "--to", "n2", "--mode", "weak"])
        /// The copies of the program on the host; with `running`, only those not frozen.
        func copies(running: Bool = false) -> Int {
            let processes = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
            return processes.filter { pid in
                guard Int32(pid) != nil,
                    FileManager.default.contents(atPath: "/proc/\(pid)/cmdline") == Data("sleep\0\(marker)\0".utf8)
                else { return false }
                guard running else { return true }
                let groups = (try? String(contentsOfFile: "/proc/\(pid)/cgroup", encoding: .utf8)) ?? ""
                guard let freezer = groups.split(separator: "\n").first(where: { $0.contains(":freezer:") }) else {
                    return true
                }
                let path = "/sys/fs/cgroup/freezer" + freezer.split(separator: ":", maxSplits: 2)[2]
                let state = (try? String(contentsOfFile: path + "/freezer.state", encoding: .utf8)) ?? ""
                return !state.contains("FROZEN")
            }.count
        }
        // The program runs on the survivor, the only one to hold its claim (a target that died
        // holding the claim holds it for one lease of 10 s).
        let settled = waitUntil(within: .seconds(30)) {
            guard copies(running: true) == 1,
                let holder = try? FerryProcess([
                    "endpoints", "--addr", "\(address)", "lookup", "process:mover", "--json",
                ]).finish().output
            else { return false }
            return holder.contains("\"node\":\"\(survivor)\"")
        }
        #expect(
            settled != nil,
            """
            running copies: \(copies(running: true)), ps: \((try? ferry(["ps", "--json"]).1) ?? "")
            migrate: \(moved.1)
            \(self.nodeLogs(["n1", "n2"]))
            """
        )
        // A frozen copy left by a killed source ends when a node or container next starts here.
        _ = try self.run([], "true")
        #expect(waitUntil(within: .seconds(10)) { copies() == 1 } != nil, "copies on the host: \(copies())")
        #expect(try ferry(["kill", "mover"]).0 == 0)
        #expect(waitUntil(within: .seconds(10)) { copies() == 0 } != nil, "the container outlived its kill")
        for node in nodes.values { _ = node.stop(SIGTERM) }
        _ = daemon.stop(SIGTERM)
        // The killed node's cgroups, emptied now, go at the next start.
        _ = try self.run([], "true")
        self.expectNothingLeft()
    }

}

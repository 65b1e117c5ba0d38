import FerryPosix
import FerryTestSupport
import Foundation
import Testing

/// Why the script cannot run here, or nil when it can.
let multihostMissing: String? = {
    if getuid() != 0 { return "network namespaces, veth pairs and a bridge need root" }
    if !["/usr/sbin/ip", "/usr/bin/ip", "/sbin/ip", "/bin/ip"].contains(where: FileManager.default.isExecutableFile) {
        return "ip is not installed (Debian: iproute2)"
    }
    if EtcdCluster.binary == nil { return EtcdCluster.missing }
    if PostgresServer.binaries == nil { return PostgresServer.missing }
    return nil
}()

/// Ferry across three hosts made of network namespaces: `Examples/multihost.sh` builds them
/// (veth pairs and a bridge), runs etcd on each, PostgreSQL on one, an object node and a file
/// server on each and the switch on one, and checks each step itself: calls from every host,
/// a move between hosts, a host cut off and its object claimed elsewhere, nothing acknowledged
/// lost. This test runs it with the ferry just built.
@Suite(.enabled(if: multihostMissing == nil, "\(multihostMissing ?? "")"))
struct MultihostTests {
    static let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("Examples/multihost.sh").path

    @Test func threeHostsCallMoveAndSurviveAHostCutOff() throws {
        let output = try TemporaryDirectory()
        let log = output.path + "/multihost.log"
        let descriptor = open(log, O_WRONLY | O_CREAT | O_CLOEXEC, 0o644)
        defer { close(descriptor) }
        var environment = ProcessInfo.processInfo.environment
        environment["FERRY"] = try FerryProcess.executable().path
        let status = try ChildProcess(
            "/bin/bash",
            [Self.script],
            environment: environment,
            standardOutput: descriptor,
            standardError: descriptor
        ).wait()
        let text = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
        #expect(status == .exited(0), "\(text.suffix(4000))")
        #expect(text.contains("calls from h1, h2 and h3 reached one activation (value 3)"), "\(text)")
        #expect(text.contains("with its state (value 4)"), "\(text)")
        #expect(text.contains("value 5, nothing acknowledged lost"), "\(text)")
        #expect(text.contains("\nmultihost: ok\n"), "\(text.suffix(2000))")
    }
}

import Foundation
import NIOConcurrencyHelpers
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// The resource segment across a move, one resource of each kind in the seed's table, with
/// nodes, the key-value service and a TCP peer as real processes and sockets.
@Suite(.serialized, .onThreadsOfTheirOwn) struct ResourceTests {
    /// A TCP peer: what each connection to it said.
    final class Peer: Sendable {
        let port: Int
        private let fd: Int32
        private let said = NIOLockedValueBox<[Int: String]>([:])
        private let accepting = NIOLockedValueBox(true)

        /// - Parameter once: accept one connection, then stop listening (only the first node to
        ///   connect can reach it).
        init(once: Bool) throws {
            let (fd, port) = Self.bindLoopback(port: 0)
            listen(fd, 8)
            self.fd = fd
            self.port = port
            let said = self.said
            let accepting = self.accepting
            Thread.detachNewThread {
                var index = 0
                while accepting.withLockedValue({ $0 }) {
                    let client = accept(fd, nil, nil)
                    guard client >= 0 else { return }
                    _ = fcntl(client, F_SETFD, FD_CLOEXEC)
                    let number = index
                    index += 1
                    if once {
                        accepting.withLockedValue { $0 = false }
                        close(fd)
                        Self.hold(port: port)
                    }
                    // Taken: the guest waits for this byte before it moves.
                    _ = send(client, "k", 1, Int32(MSG_NOSIGNAL))
                    Thread.detachNewThread {
                        var buffer = [UInt8](repeating: 0, count: 4096)
                        while true {
                            let got = buffer.withUnsafeMutableBytes { recv(client, $0.baseAddress, 4096, 0) }
                            guard got > 0 else { break }
                            said.withLockedValue {
                                $0[number, default: ""] += String(decoding: buffer.prefix(got), as: UTF8.self)
                            }
                        }
                        close(client)
                    }
                }
            }
        }

        /// Keeps `port` bound without listening, for the rest of the run: a connection to it is
        /// refused, where a port merely closed could be taken by another test's listener.
        private static func hold(port: Int) {
            _ = Self.bindLoopback(port: port)
        }

        /// A TCP socket bound to 127.0.0.1:`port` with SO_REUSEADDR (0 for any port), and its port.
        private static func bindLoopback(port: Int) -> (fd: Int32, port: Int) {
            // Close-on-exec: a `ferry` another test starts meanwhile must not inherit the listener
            // and keep it listening after it is closed here.
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
            var reuse: Int32 = 1
            setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &reuse, socklen_t(MemoryLayout<Int32>.size))
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_addr.s_addr = inet_addr("127.0.0.1")
            address.sin_port = UInt16(port).bigEndian
            _ = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
                }
            }
            var length = socklen_t(MemoryLayout<sockaddr_in>.size)
            _ = withUnsafeMutablePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
            }
            return (fd, Int(UInt16(bigEndian: address.sin_port)))
        }

        /// What connection `index` said, waiting a little for its last words.
        func connections(expecting count: Int) -> [String] {
            for _ in 0..<100 where self.said.withLockedValue({ $0.count }) < count { usleep(50_000) }
            return self.said.withLockedValue { said in said.keys.sorted().map { said[$0]! } }
        }

        deinit {
            if self.accepting.withLockedValue({ $0 }) { shutdown(self.fd, Int32(SHUT_RDWR)) }
        }
    }

    /// A cluster with two nodes, each with its own temperature, and the key-value service; the
    /// second node does not see the image directory when `hidingImage`.
    static func cluster(hidingImage: Bool = false) throws -> (TestCluster, TestCluster.Member, String) {
        let cluster = try TestCluster()
        let image = cluster.directory + "/image"
        try FileManager.default.createDirectory(atPath: image, withIntermediateDirectories: true)
        try "from the image\n".write(toFile: image + "/base.txt", atomically: true, encoding: .utf8)
        try cluster.start("n1", extra: ["--local", "temperature=11"])
        try cluster.start("n2", hiding: hidingImage ? image : nil, extra: ["--local", "temperature=22"])
        let kv = try TestCluster.Member(
            "kv",
            ["serve", "kv", "--db", cluster.directory + "/kv.sqlite", "--port", "0"],
            environment: [:],
            log: cluster.directory + "/kv.log"
        )
        let registered = try cluster.ferry(
            ["endpoints", "--addr", cluster.daemon.endpoint, "register", "kv", kv.endpoint, "--ttl", "600", "--once"]
        )
        try #require(registered.status == 0, "\(registered.error)")
        return (cluster, kv, image)
    }

    @Test func eachResourceIsBoundAsTheTableSaysAndAConnectionIsOpenedAgainFromTheTarget() throws {
        let (cluster, kv, image) = try Self.cluster()
        let peer = try Peer(once: false)
        let spawned = try cluster.run(
            "spawn",
            [
                "--node", "n1", try cluster.signed("resources"), "--name", "res", "--dir", "\(image):/data", "n2",
                "127.0.0.1:\(peer.port)",
            ]
        )
        try #require(spawned.status == 0, "\(spawned.error)")
        let waited = try cluster.run("wait", ["res"])
        #expect(waited.status == 0, "\(waited.error)\n\(cluster.log("n1"))\n\(cluster.log("n2"))")
        let logs = try cluster.run("logs", ["res"]).output
        #expect(
            logs == """
                moved: yes, on n2
                file: written at n1
                lower: from the image
                kv: written at n1
                local: 22
                connection: sent

                """
        )
        // By value: the file moved with the process's own layer; the image below stayed as it was.
        #expect(!FileManager.default.fileExists(atPath: image + "/note.txt"))
        // By identifier: the target opened the connection again, to the same peer.
        #expect(peer.connections(expecting: 2) == ["before the move\n", "after the move, from n2\n"])
        let table = try cluster.run("ps", ["--resources", "res"]).output
        for row in [
            "file layer", "by value", "lower layer", "fastened", "kv key", "resources/greeting", "node-local key space",
            "by type",
        ] {
            #expect(table.contains(row), "ferry ps --resources lists \(row):\n\(table)")
        }
        _ = kv
    }

    /// Another machine would not have the image: the target copies it from the source the first
    /// time the process touches the directory.
    @Test(
        .enabled(
            if: getuid() == 0 && FileManager.default.isExecutableFile(atPath: "/usr/bin/unshare"),
            "needs root and unshare(1) to give the target a mount namespace without the image"
        )
    )
    func aLowerLayerTheTargetCannotSeeIsCopiedFromTheSourceOnFirstUse() throws {
        let (cluster, kv, image) = try Self.cluster(hidingImage: true)
        let peer = try Peer(once: false)
        let spawned = try cluster.run(
            "spawn",
            [
                "--node", "n1", try cluster.signed("resources"), "--name", "res", "--dir", "\(image):/data", "n2",
                "127.0.0.1:\(peer.port)",
            ]
        )
        try #require(spawned.status == 0, "\(spawned.error)")
        let waited = try cluster.run("wait", ["res"])
        #expect(waited.status == 0, "\(waited.error)\n\(cluster.log("n2"))")
        let logs = try cluster.run("logs", ["res"]).output
        #expect(logs.contains("moved: yes, on n2\n") && logs.contains("lower: from the image\n"), "\(logs)")
        #expect(cluster.log("n2").contains("copied a read-only layer"), "\(cluster.log("n2"))")
        _ = kv
    }

    @Test func aConnectionOnlyTheSourceCanReachKeepsTheProcessWhereItIs() throws {
        let (cluster, kv, image) = try Self.cluster()
        let peer = try Peer(once: true)
        let spawned = try cluster.run(
            "spawn",
            [
                "--node", "n1", try cluster.signed("resources"), "--name", "res", "--dir", "\(image):/data", "n2",
                "127.0.0.1:\(peer.port)",
            ]
        )
        try #require(spawned.status == 0, "\(spawned.error)")
        let waited = try cluster.run("wait", ["res"])
        #expect(waited.status == 0, "\(waited.error)")
        let logs = try cluster.run("logs", ["res"]).output
        #expect(logs.hasPrefix("moved: no, still on n1\n"), "\(logs)")
        #expect(logs.contains("local: 11\n") && logs.hasSuffix("connection: sent\n"))
        #expect(cluster.log("n1").contains("cannot reach"), "the source says why the move was refused")
        #expect(peer.connections(expecting: 1) == ["before the move\nafter the move, from n1\n"])
        #expect(try cluster.listings(of: "res").map(\.node) == ["n1"])
        _ = kv
    }
}

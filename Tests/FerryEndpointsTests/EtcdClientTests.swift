import FerryEndpoints
import FerryTestSupport
import Testing

/// The etcd client the registry stands on, against a real three-member etcd cluster: leases,
/// exclusive creates whose revisions only grow, and a member killed under it.
///
/// They share the test process's cluster, each with keys of its own; the one that kills a member
/// starts a cluster of its own.
@Suite(.serialized, .enabled(if: EtcdCluster.binary != nil, "\(EtcdCluster.missing)"))
struct EtcdClientTests {
    private func client(of cluster: EtcdCluster) throws -> EtcdClient {
        try #require(EtcdClient(url: cluster.url))
    }

    /// A key no other test uses: under a prefix of this test's own.
    private let prefix = "/ferry-test/\(UInt64.random(in: 0...UInt64.max))/"
    private func key(_ text: String) -> [UInt8] { Array((self.prefix + text).utf8) }

    @Test func aKeyIsCreatedOnceAndItsRevisionsOnlyGrow() async throws {
        let etcd = try self.client(of: try EtcdCluster.shared())
        let first = try await etcd.grantLease(ttlSeconds: 60)
        let second = try await etcd.grantLease(ttlSeconds: 60)
        #expect(first.ttlSeconds >= 60 && first.id != second.id)

        let claimed = try #require(try await etcd.create(self.key("a"), Array("one".utf8), lease: first.id))
        #expect(try await etcd.create(self.key("a"), Array("two".utf8), lease: second.id) == nil, "held")
        #expect(
            try await etcd.create(self.key("a"), Array("one".utf8), lease: first.id) == claimed,
            "the holder's own retry finds its claim"
        )
        let read = try await etcd.range(self.key("a"))
        #expect(read.values.map(\.value) == [Array("one".utf8)] && read.values.first?.lease == first.id)

        // Given up, the key goes with the lease; the next claim's epoch is past the first's.
        #expect(try await etcd.revoke(first.id))
        #expect(try await etcd.range(self.key("a")).values.isEmpty)
        let next = try #require(try await etcd.create(self.key("a"), Array("two".utf8), lease: second.id))
        #expect(next > claimed)
        try await etcd.revoke(second.id)
    }

    @Test func aLeaseLivesWhileKeptAliveAndRevokedIsGone() async throws {
        let etcd = try self.client(of: try EtcdCluster.shared())
        let lease = try await etcd.grantLease(ttlSeconds: 60)
        #expect(try await etcd.keepAlive(lease.id) >= 60)
        try await etcd.put(self.key("kept/1"), Array("x".utf8), lease: lease.id)
        try await etcd.put(self.key("kept/2"), Array("y".utf8), lease: lease.id)
        #expect(try await etcd.range(prefix: self.key("kept/")).values.count == 2)
        #expect(try await etcd.revoke(lease.id))
        #expect(try await etcd.keepAlive(lease.id) == 0, "a revoked lease cannot be renewed")
        #expect(try await etcd.revoke(lease.id) == false)
        #expect(try await etcd.range(prefix: self.key("kept/")).values.isEmpty)
    }

    @Test func aRefusedRequestSaysWhatEtcdSaid() async throws {
        let etcd = try self.client(of: try EtcdCluster.shared())
        await #expect {
            try await etcd.put(self.key("b"), [1], lease: 12_345)
        } throws: { error in
            "\(error)".contains("requested lease not found")
        }
    }

    @Test func nothingListeningIsSaidInOneError() async throws {
        let closed = try ClosedPort()
        let etcd = EtcdClient(members: [ServiceEndpoint(host: "127.0.0.1", port: closed.port)])
        await #expect {
            try await etcd.range(self.key("c"))
        } throws: { error in
            "\(error)".contains("no etcd member answered /v3/kv/range") && "\(error)".contains("\(closed.port)")
        }
    }

    @Test func aKilledMemberIsPassedOverAndTheOthersKeepTheClaims() async throws {
        let cluster = try EtcdCluster()
        defer { cluster.close() }
        let etcd = try self.client(of: cluster)
        let lease = try await etcd.grantLease(ttlSeconds: 60)
        let claimed = try #require(try await etcd.create(self.key("d"), [1], lease: lease.id))
        cluster.kill(member: 0)
        try cluster.waitUntilHealthy(member: 1)  // a leader again, if it was the one killed
        // The dead member is first in the client's list: calls go on to the others.
        #expect(try await etcd.keepAlive(lease.id) >= 1, "the lease outlives the member")
        #expect(try await etcd.range(self.key("d")).values.first?.createRevision == claimed)
        let other = try await etcd.grantLease(ttlSeconds: 60)
        #expect(try await etcd.create(self.key("d"), [2], lease: other.id) == nil, "still held")
        let after = try #require(try await etcd.create(self.key("e"), [3], lease: other.id))
        #expect(after > claimed, "revisions keep growing with a member down")
    }
}

import Testing

@testable import FerryCDN

@Suite struct RendezvousHashTests {
    static let paths = (0..<10_000).map { "/objects/\($0).bin" }

    @Test func theHashIsFNV1a64WhateverTheProcess() {
        // The published FNV-1a 64 test vectors: no per-process seed, so redirectors agree.
        #expect(RendezvousHash.hash("".utf8) == 0xcbf2_9ce4_8422_2325)
        #expect(RendezvousHash.hash("a".utf8) == 0xaf63_dc4c_8601_ec8c)
        #expect(RendezvousHash.hash("foobar".utf8) == 0x8594_4171_f739_67e8)
    }

    @Test func theSameKeyGoesToTheSameMemberWhateverTheOrderOfMembers() {
        let forward = RendezvousHash([("e1", 1), ("e2", 1), ("e3", 1)])
        let backward = RendezvousHash([("e3", 1), ("e2", 1), ("e1", 1)])
        for path in Self.paths.prefix(1_000) {
            #expect(forward.member(for: path)?.name == backward.member(for: path)?.name)
        }
    }

    @Test func removingAMemberMovesOnlyTheKeysThatWereOnIt() {
        let three = RendezvousHash([("e1", 1), ("e2", 1), ("e3", 1)])
        let two = RendezvousHash([("e1", 1), ("e3", 1)])
        var moved = 0
        for path in Self.paths {
            let before = three.member(for: path)?.name
            let after = two.member(for: path)?.name
            if before != after {
                #expect(before == "e2", "\(path) moved from \(before ?? "-") to \(after ?? "-")")
                moved += 1
            }
        }
        // Every key of e2 moved, and they are about a third of all.
        #expect(moved > 3_000 && moved < 3_700)
    }

    @Test func eachMemberGetsAboutItsWeightsShare() {
        let hash = RendezvousHash([("small", 100), ("medium", 200), ("large", 300)])
        var counts: [String: Int] = [:]
        for path in Self.paths { counts[hash.member(for: path)?.name ?? "-", default: 0] += 1 }
        let share = counts.mapValues { Double($0) / Double(Self.paths.count) }
        #expect(abs((share["small"] ?? 0) - 1.0 / 6) < 0.02, "\(share)")
        #expect(abs((share["medium"] ?? 0) - 2.0 / 6) < 0.02, "\(share)")
        #expect(abs((share["large"] ?? 0) - 3.0 / 6) < 0.02, "\(share)")
    }

    @Test func aMemberWithoutWeightGetsNothing() {
        let hash = RendezvousHash([("zero", 0), ("one", 1)])
        #expect(Self.paths.prefix(500).allSatisfy { hash.member(for: $0)?.name == "one" })
        #expect(RendezvousHash([("zero", 0)]).index(for: "/x") == nil)
        #expect(RendezvousHash([(name: String, weight: Double)]()).index(for: "/x") == nil)
    }

    /// Pinned assignments: a change here changes where every redirector sends every path, so it
    /// must be deliberate (and rolled out to all redirectors at once).
    @Test func assignmentsAreStableAcrossReleases() {
        let hash = RendezvousHash([("e1", 1000), ("e2", 1000), ("e3", 2000)])
        let assigned = ["/a", "/b", "/c", "/d", "/e", "/f", "/g", "/h", "/index.html", "/video/1.ts"].map {
            hash.member(for: $0)?.name ?? "-"
        }
        #expect(assigned == ["e1", "e1", "e3", "e1", "e3", "e2", "e3", "e2", "e3", "e3"])
    }
}

import FerryServer
import FerryTestSupport
import NIOConcurrencyHelpers
import Testing

/// Soft state: leased sessions, and a file server that answers the same with or without them.
@Suite struct SessionTests {
    final class Clock: Sendable {
        let now = NIOLockedValueBox<UInt64>(0)
        func advance(seconds: UInt64) { self.now.withLockedValue { $0 += seconds * 1_000_000_000 } }
    }

    @Test func aSessionLivesWhileItIsUsedAndEndsOneTTLAfterItsLastUse() {
        let clock = Clock()
        let store = SessionStore<Int>(ttl: .seconds(10), clock: { clock.now.withLockedValue { $0 } })
        let first = store.update(nil, creating: 0) { $0 += 1 }
        #expect(first.isNew && first.value == 1)
        clock.advance(seconds: 8)
        let second = store.update(first.id, creating: 0) { $0 += 1 }
        #expect(!second.isNew && second.id == first.id && second.value == 2)
        clock.advance(seconds: 8)  // 16 s after creation, 8 after the renewal
        #expect(store.value(of: first.id) == 2)
        clock.advance(seconds: 3)
        #expect(store.value(of: first.id) == nil, "11 s without use: gone")
        let fresh = store.update(first.id, creating: 0) { $0 += 1 }
        #expect(fresh.isNew && fresh.id != first.id && fresh.value == 1, "an expired id is never revived")
    }

    @Test func anIdThatNoSessionCouldHaveStartsANewOne() {
        let store = SessionStore<Int>(ttl: .seconds(10))
        let session = store.update(nil, creating: 0) { $0 += 1 }
        #expect(session.id.count == 32 && session.id.allSatisfy(\.isHexDigit) && session.id == session.id.lowercased())
        for foreign in [
            "", "nonsense", String(repeating: "z", count: 32), session.id.uppercased(), "+" + session.id.dropFirst(),
        ] {
            #expect(store.value(of: foreign) == nil, "'\(foreign)' names no session")
            let other = store.update(foreign, creating: 0) { $0 += 1 }
            #expect(other.isNew && other.id != session.id && other.value == 1)
        }
        #expect(store.value(of: session.id) == 1, "the real session is untouched")
    }

    @Test func aFullStoreDropsExpiredThenNearestToExpiring() {
        let clock = Clock()
        let store = SessionStore<Int>(ttl: .seconds(10), capacity: 10, clock: { clock.now.withLockedValue { $0 } })
        let oldest = store.update(nil, creating: 0) { _ in }
        clock.advance(seconds: 1)
        var ids: [String] = []
        for _ in 0..<9 { ids.append(store.update(nil, creating: 0) { _ in }.id) }
        _ = store.update(nil, creating: 0) { _ in }
        #expect(store.count <= 10)
        #expect(store.value(of: oldest.id) == nil, "the one closest to expiring made room")
        #expect(store.value(of: ids.last!) != nil)
    }

    @Test(arguments: ExecutionModel.allCases)
    func theFileServerCountsASessionsRequestsAndServesTheSameWhenItIsLost(model: ExecutionModel) async throws {
        let directory = try TemporaryDirectory()
        directory.write("hello.txt", "hello")
        try await withFileServer(.init(root: directory.path, model: model, workers: 2, sessionTTL: .seconds(60))) {
            server in
            let connection = try TestClient(port: server.port)
            try connection.get("/hello.txt")
            let first = try connection.readResponse()
            #expect(first.body == Array("hello".utf8))
            #expect(first.header("ferry-session-requests") == "1")
            let cookie = try #require(first.header("set-cookie"))
            #expect(cookie.hasPrefix("ferry-session=") && cookie.contains("HttpOnly"))
            let session = String(cookie.dropFirst("ferry-session=".count).prefix { $0 != ";" })

            try connection.get("/hello.txt", ["Cookie: theme=dark; ferry-session=\(session)"])
            let second = try connection.readResponse()
            #expect(second.header("ferry-session-requests") == "2")
            #expect(second.header("set-cookie") == nil)

            // The server loses its soft state: same answer, a new session.
            server.sessions?.removeAll()
            try connection.get("/hello.txt", ["Cookie: ferry-session=\(session)"])
            let afterLoss = try connection.readResponse()
            #expect(afterLoss.status == 200 && afterLoss.body == Array("hello".utf8))
            #expect(afterLoss.header("ferry-session-requests") == "1")
            #expect(afterLoss.header("set-cookie")?.contains(session) == false)

            // A forged or stale id is treated like no session at all.
            try connection.get("/hello.txt", ["Cookie: ferry-session=forged"])
            #expect(try connection.readResponse().header("ferry-session-requests") == "1")
        }
    }
}

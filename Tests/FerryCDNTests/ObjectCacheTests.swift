import NIOCore
import Testing

@testable import FerryCDN

@Suite struct ObjectCacheTests {
    let object = makeObject(cacheControl: "max-age=60", body: [UInt8](repeating: 7, count: 1000))

    /// A cache that holds exactly `slots` objects like `object` under two-character keys.
    func cache(slots: Int) -> ObjectCache {
        let cost = ObjectCache.cost(key: "/a", object: self.object)
        return ObjectCache(byteLimit: slots * cost, maxObjectBytes: cost)
    }

    func encoded(_ encoding: String, body: String) -> CachedObject {
        makeObject(
            [("Date", httpDate(t0)), ("Cache-Control", "max-age=60"), ("Vary", "Accept-Encoding")],
            body: Array(body.utf8),
            request: [("Accept-Encoding", encoding)]
        )
    }

    @Test func evictionSparesTheObjectTouchedSinceInsertion() {
        let cache = self.cache(slots: 3)
        for key in ["/A", "/B", "/C"] { #expect(cache.insert(self.object, forKey: key)) }
        #expect(cache.lookup("/A", requestHeaders: []) != nil)
        #expect(cache.insert(self.object, forKey: "/D"))
        #expect(cache.lookup("/B", requestHeaders: []) == nil)
        for key in ["/A", "/C", "/D"] { #expect(cache.lookup(key, requestHeaders: []) != nil) }
        #expect(cache.count == 3)
        #expect(cache.evictions == 1)
    }

    @Test func evictionWithoutHitsRemovesTheOldestFirst() {
        let cache = self.cache(slots: 3)
        for key in ["/A", "/B", "/C", "/D", "/E"] { cache.insert(self.object, forKey: key) }
        #expect(cache.lookup("/A", requestHeaders: []) == nil)
        #expect(cache.lookup("/B", requestHeaders: []) == nil)
        #expect(cache.count == 3)
        #expect(cache.evictions == 2)
    }

    @Test func bytesStayWithinTheBudgetAndCountEveryObject() {
        let cache = self.cache(slots: 4)
        let cost = ObjectCache.cost(key: "/a", object: self.object)
        for index in 0..<10 { cache.insert(self.object, forKey: "/\(index)") }
        #expect(cache.bytes == 4 * cost)
        #expect(cache.bytes <= cache.byteLimit)
        #expect(cache.count == 4)
        #expect(cache.evictions == 6)
    }

    @Test func objectsAboveTheSizeLimitAreNotStored() {
        let cache = ObjectCache(byteLimit: 80_000)
        #expect(cache.maxObjectBytes == 10_000)
        let big = makeObject(cacheControl: "max-age=60", body: [UInt8](repeating: 0, count: 10_000))
        #expect(!cache.insert(big, forKey: "/big"))
        #expect(cache.count == 0 && cache.bytes == 0)
        #expect(cache.insert(self.object, forKey: "/small"))
    }

    @Test func aTooLargeNewVersionDropsTheOldOne() {
        let cache = ObjectCache(byteLimit: 80_000)
        cache.insert(self.object, forKey: "/x")
        let big = makeObject(cacheControl: "max-age=60", body: [UInt8](repeating: 0, count: 20_000))
        #expect(!cache.insert(big, forKey: "/x"))
        #expect(cache.lookup("/x", requestHeaders: []) == nil)
    }

    @Test func variantsOfOneKeyAreSelectedByVary() {
        let cache = ObjectCache(byteLimit: 1 << 20)
        cache.insert(self.encoded("gzip", body: "gzipped"), forKey: "/page")
        cache.insert(self.encoded("br", body: "brotli"), forKey: "/page")
        #expect(cache.count == 2)
        #expect(
            cache.lookup("/page", requestHeaders: [("Accept-Encoding", "br")])?.body == ByteBuffer(string: "brotli")
        )
        #expect(
            cache.lookup("/page", requestHeaders: [("accept-encoding", "gzip")])?.body == ByteBuffer(string: "gzipped")
        )
        #expect(cache.lookup("/page", requestHeaders: [("Accept-Encoding", "zstd")]) == nil)
        #expect(cache.lookup("/page", requestHeaders: []) == nil)
    }

    @Test func insertingTheSameVariantReplacesIt() {
        let cache = ObjectCache(byteLimit: 1 << 20)
        cache.insert(self.encoded("gzip", body: "old"), forKey: "/page")
        cache.insert(self.encoded("gzip", body: "new"), forKey: "/page")
        #expect(cache.count == 1)
        #expect(cache.lookup("/page", requestHeaders: [("Accept-Encoding", "gzip")])?.body == ByteBuffer(string: "new"))
        #expect(cache.bytes == ObjectCache.cost(key: "/page", object: self.encoded("gzip", body: "new")))
    }

    @Test func theVariantLimitEvictsTheOldestVariant() {
        let cache = ObjectCache(byteLimit: 1 << 20, maxVariantsPerKey: 2)
        for encoding in ["gzip", "br", "zstd"] { cache.insert(self.encoded(encoding, body: encoding), forKey: "/page") }
        #expect(cache.count == 2)
        #expect(cache.evictions == 1)
        #expect(cache.lookup("/page", requestHeaders: [("Accept-Encoding", "gzip")]) == nil)
        #expect(cache.lookup("/page", requestHeaders: [("Accept-Encoding", "zstd")]) != nil)
    }

    @Test func varyStarIsNeverStored() {
        let cache = ObjectCache(byteLimit: 1 << 20)
        let star = makeObject([("Cache-Control", "max-age=60"), ("Vary", "*")])
        #expect(!cache.insert(star, forKey: "/star"))
        #expect(cache.count == 0)
    }

    @Test func replaceUpdatesOnlyAStoredVariant() {
        let cache = ObjectCache(byteLimit: 1 << 20)
        let refreshed = self.object.refreshed(with: [("Cache-Control", "max-age=5")], requestTime: t0, responseTime: t0)
        #expect(!cache.replace(refreshed, forKey: "/x"))
        #expect(cache.count == 0)
        cache.insert(self.object, forKey: "/x")
        #expect(cache.replace(refreshed, forKey: "/x"))
        #expect(cache.lookup("/x", requestHeaders: [])?.freshnessLifetime == 5)
        #expect(cache.count == 1)
        cache.purge("/x")
        #expect(!cache.replace(refreshed, forKey: "/x"))
    }

    @Test func purgeRemovesEveryVariantOfAKey() {
        let cache = ObjectCache(byteLimit: 1 << 20)
        cache.insert(self.encoded("gzip", body: "a"), forKey: "/page")
        cache.insert(self.encoded("br", body: "b"), forKey: "/page")
        cache.insert(self.object, forKey: "/other")
        #expect(cache.purge("/page") == 2)
        #expect(cache.purge("/page") == 0)
        #expect(cache.count == 1)
        #expect(cache.bytes == ObjectCache.cost(key: "/other", object: self.object))
    }

    @Test func purgeByPrefixRemovesOnlyMatchingKeys() {
        let cache = ObjectCache(byteLimit: 1 << 20, shards: 4)
        for key in ["/img/a.png", "/img/b.png?x=1", "/img", "/index.html", "/im"] {
            cache.insert(self.object, forKey: key)
        }
        cache.insert(self.encoded("br", body: "b"), forKey: "/img/c.png")
        #expect(cache.purge(prefix: "/img/") == 3)
        #expect(cache.count == 3)
        #expect(cache.lookup("/img", requestHeaders: []) != nil)
        #expect(cache.lookup("/img/a.png", requestHeaders: []) == nil)
        #expect(cache.purge(prefix: "") == 3)
        #expect(cache.count == 0 && cache.bytes == 0)
    }

    @Test func removeDropsOneVariant() {
        let cache = ObjectCache(byteLimit: 1 << 20)
        let gzip = self.encoded("gzip", body: "a")
        cache.insert(gzip, forKey: "/page")
        cache.insert(self.encoded("br", body: "b"), forKey: "/page")
        #expect(cache.remove("/page", varyKey: gzip.varyKey))
        #expect(!cache.remove("/page", varyKey: gzip.varyKey))
        #expect(cache.count == 1)
    }

    @Test(arguments: [1, 4])
    func concurrentUseKeepsTheBudgetAndTheCounts(shards: Int) async {
        let cost = ObjectCache.cost(key: "/t0/k000", object: self.object)
        let cache = ObjectCache(byteLimit: 50 * cost, maxObjectBytes: cost, shards: shards)
        let object = self.object
        let tasks = 8
        let perTask = 300
        let found = await withTaskGroup(of: Int.self) { group in
            for task in 0..<tasks {
                group.addTask {
                    var found = 0
                    for index in 0..<perTask {
                        let key = "/t\(task)/k" + String(repeating: "0", count: 3 - String(index).count) + "\(index)"
                        cache.insert(object, forKey: key)
                        if cache.lookup(key, requestHeaders: []) != nil { found += 1 }
                        if index % 7 == 0 { _ = cache.lookup("/t\((task + 1) % tasks)/k000", requestHeaders: []) }
                        #expect(cache.bytes <= cache.byteLimit)
                    }
                    return found
                }
            }
            return await group.reduce(0, +)
        }
        #expect(found > 0)
        #expect(cache.bytes <= cache.byteLimit)
        #expect(cache.bytes == cache.count * cost)
        // Every insert of a new key is either still stored or was evicted.
        #expect(cache.count + cache.evictions == tasks * perTask)
        let remaining = cache.count
        #expect(cache.purge(prefix: "/t") == remaining)
        #expect(cache.count == 0 && cache.bytes == 0)
    }
}

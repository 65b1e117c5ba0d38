import Foundation
import Testing

@testable import FerryCDN

@Suite struct DiskCacheTests {
    let directory = FileManager.default.temporaryDirectory
        .appendingPathComponent("ferry-disk-cache-\(UInt64.random(in: 0 ... .max))").path

    let object = makeObject(
        [
            ("Date", httpDate(t0)), ("Age", "5"), ("Cache-Control", "max-age=60, stale-if-error=30"),
            ("ETag", #""v1""#), ("Vary", "Accept-Encoding, Accept-Language"),
            ("Content-Type", "text/plain; charset=é"),
        ],
        body: Array((0..<5000).map { UInt8(truncatingIfNeeded: $0 * 31) }),
        request: [("Accept-Encoding", "gzip")],
        requestTime: t0 - 1,
        responseTime: t0
    )

    func files() -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: self.directory)) ?? []).sorted()
    }

    func onlyFile() throws -> String {
        let files = self.files()
        try #require(files.count == 1)
        return self.directory + "/" + files[0]
    }

    @Test func objectsRoundTripWithTheirAgeAndVaryKey() throws {
        defer { try? FileManager.default.removeItem(atPath: self.directory) }
        let disk = try DiskCache(directory: self.directory)
        try disk.write(key: "/page?q=1", object: self.object)
        let loaded = disk.loadAll()
        try #require(loaded.count == 1)
        #expect(loaded[0].key == "/page?q=1")
        #expect(loaded[0].object == self.object)
        #expect(loaded[0].object.varyKey.values == ["gzip", nil])
        #expect(loaded[0].object.age(now: t0 + 10) == self.object.age(now: t0 + 10))
        #expect(loaded[0].object.freshnessLifetime == 60)
        #expect(loaded[0].object.etag == #""v1""#)
        #expect(self.files().allSatisfy { $0.hasSuffix(".fobj") })
    }

    @Test func rewritingAVariantReplacesItsFile() throws {
        defer { try? FileManager.default.removeItem(atPath: self.directory) }
        let disk = try DiskCache(directory: self.directory)
        try disk.write(key: "/page", object: self.object)
        let newer = self.object.refreshed(with: [("ETag", #""v2""#)], requestTime: t0 + 5, responseTime: t0 + 5)
        try disk.write(key: "/page", object: newer)
        let loaded = disk.loadAll()
        #expect(loaded.count == 1)
        #expect(loaded.first?.object.etag == #""v2""#)
    }

    @Test func aTruncatedFileIsSkippedAndDeleted() throws {
        defer { try? FileManager.default.removeItem(atPath: self.directory) }
        let disk = try DiskCache(directory: self.directory)
        try disk.write(key: "/page", object: self.object)
        let path = try self.onlyFile()
        let bytes = try #require(FileManager.default.contents(atPath: path))
        for length in [0, 10, 32, 100, bytes.count - 1] {
            try bytes.prefix(length).write(to: URL(fileURLWithPath: path))
            #expect(disk.loadAll().isEmpty)
            #expect(self.files().isEmpty)
            try disk.write(key: "/page", object: self.object)
        }
    }

    @Test func aCorruptedBodyOrHeadIsSkippedAndDeleted() throws {
        defer { try? FileManager.default.removeItem(atPath: self.directory) }
        let disk = try DiskCache(directory: self.directory)
        try disk.write(key: "/page", object: self.object)
        let path = try self.onlyFile()
        let original = try #require(FileManager.default.contents(atPath: path))
        for offset in [original.count - 100, 40, 9] {
            var corrupt = original
            corrupt[offset] ^= 0x01
            try corrupt.write(to: URL(fileURLWithPath: path))
            #expect(disk.loadAll().isEmpty)
            #expect(self.files().isEmpty)
            try original.write(to: URL(fileURLWithPath: path))
        }
        #expect(disk.loadAll().count == 1)
    }

    @Test func leftoverTemporaryFilesAreDeletedAndOtherFilesLeftAlone() throws {
        defer { try? FileManager.default.removeItem(atPath: self.directory) }
        let disk = try DiskCache(directory: self.directory)
        try disk.write(key: "/page", object: self.object)
        try Data([1, 2, 3]).write(to: URL(fileURLWithPath: self.directory + "/.0123-4567.fobj.89ab.tmp"))
        try Data([1, 2, 3]).write(to: URL(fileURLWithPath: self.directory + "/README"))
        #expect(disk.loadAll().count == 1)
        #expect(self.files().count == 2)
        #expect(self.files().contains("README"))
    }

    @Test func removeDeletesOneVariantAllVariantsOrAPrefix() throws {
        defer { try? FileManager.default.removeItem(atPath: self.directory) }
        let disk = try DiskCache(directory: self.directory)
        let br = makeObject(
            [("Cache-Control", "max-age=60"), ("Vary", "Accept-Encoding")],
            request: [("Accept-Encoding", "br")]
        )
        let gzip = makeObject(
            [("Cache-Control", "max-age=60"), ("Vary", "Accept-Encoding")],
            request: [("Accept-Encoding", "gzip")]
        )
        for key in ["/a", "/b/1", "/b/2", "/c"] {
            try disk.write(key: key, object: br)
            try disk.write(key: key, object: gzip)
        }
        #expect(self.files().count == 8)
        #expect(disk.remove(key: "/a", varyKey: br.varyKey))
        #expect(!disk.remove(key: "/a", varyKey: br.varyKey))
        #expect(disk.remove(key: "/c") == 2)
        #expect(disk.remove(prefix: "/b/") == 4)
        let left = disk.loadAll()
        #expect(left.count == 1)
        #expect(left.first?.key == "/a")
        #expect(left.first?.object.varyKey == gzip.varyKey)
    }

    @Test func decodingRejectsGarbageWithoutCrashing() {
        var bytes = DiskCache.encode(key: "/x", object: self.object)
        #expect(DiskCache.decode(bytes) != nil)
        for _ in 0..<200 {
            let index = Int.random(in: 0..<bytes.count)
            bytes[index] = UInt8.random(in: 0...255)
            _ = DiskCache.decode(bytes)
        }
        #expect(DiskCache.decode(Array(repeating: 0xff, count: 64)) == nil)
        #expect(DiskCache.decode([]) == nil)
    }
}

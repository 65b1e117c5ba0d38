import Foundation
import NIOCore
import NIOHTTP1

/// What the edge keeps of one answer: the stored object, ready to render.
typealias EdgeEntry = CachedObject

/// Whether an answer could be kept.
enum StoreOutcome {
    /// Fit for a shared cache, so for every client that waited on it (kept unless larger than the
    /// cache's object limit).
    case stored(EdgeEntry)
    case refused(String)
}

/// The edge's cache: objects in memory under a byte budget, mirrored to a directory when the
/// edge has one (each file written atomically when the object is stored: only misses and
/// revalidations write, so the event loop waits on the disk only when it waits on the origin too).
final class EdgeCache: Sendable {
    private let objects: ObjectCache
    private let disk: DiskCache?

    init(byteLimit: Int, directory: String?) throws {
        self.objects = ObjectCache(byteLimit: byteLimit)
        if let directory {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            let disk = try DiskCache(directory: directory)
            for (key, object) in disk.loadAll() { self.objects.insert(object, forKey: key) }
            self.disk = disk
        } else {
            self.disk = nil
        }
    }

    var count: Int { self.objects.count }
    var bytes: Int { self.objects.bytes }

    func lookup(_ key: String, headers: HTTPHeaders) -> EdgeEntry? {
        self.objects.lookup(key, requestHeaders: headers)
    }

    func store(_ key: String, response: OriginResponse, requestHeaders: HTTPHeaders) -> StoreOutcome {
        let fields = response.headers.fields
        let request = requestHeaders.fields
        switch Storability.evaluate(
            method: "GET",
            requestHeaders: request,
            status: Int(response.status.code),
            responseHeaders: fields
        ) {
        case .refuse(let reason):
            return .refused(reason)
        case .store:
            let object = CachedObject(
                status: Int(response.status.code),
                headers: fields,
                body: response.body,
                requestHeaders: request,
                requestTime: response.requestTime,
                responseTime: response.responseTime
            )
            if self.objects.insert(object, forKey: key) { self.write(key, object) }
            return .stored(object)
        }
    }

    /// A 304 for `entry`: the stored object with the answer's fields, fresh again.
    func refresh(_ key: String, _ entry: EdgeEntry, with response: OriginResponse) -> EdgeEntry {
        let refreshed = entry.refreshed(
            with: response.headers.fields,
            requestTime: response.requestTime,
            responseTime: response.responseTime
        )
        if self.objects.replace(refreshed, forKey: key) { self.write(key, refreshed) }
        return refreshed
    }

    func purge(_ key: String) -> Int {
        let removed = self.objects.purge(key)
        _ = self.disk?.remove(key: key)
        return removed
    }

    func purge(prefix: String) -> Int {
        let removed = self.objects.purge(prefix: prefix)
        _ = self.disk?.remove(prefix: prefix)
        return removed
    }

    private func write(_ key: String, _ object: CachedObject) {
        try? self.disk?.write(key: key, object: object)
    }
}

extension CachedObject {
    /// Whether this variant answers a request with these fields (its Vary fields agree).
    func matches(_ headers: HTTPHeaders) -> Bool {
        self.varyKey.matches(requestHeaders: headers)
    }

    /// Whether answers with this status carry a body (RFC 9110 §6.4.1).
    var mayHaveBody: Bool { Self.mayHaveBody(status: self.status) }

    static func mayHaveBody(status: Int) -> Bool { status >= 200 && status != 204 && status != 304 }

    /// Its age in whole seconds, as the Age field says it.
    func ageSeconds(now: Double) -> Int {
        let age = self.age(now: now)
        return age.isFinite ? max(0, Int(age)) : 0
    }
}

extension HTTPHeaders {
    /// The fields as the cache's rules take them.
    var fields: [(name: String, value: String)] { self.map { (name: $0.name, value: $0.value) } }
}

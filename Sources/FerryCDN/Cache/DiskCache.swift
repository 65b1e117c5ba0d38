import Foundation
import NIOCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Optional persistence for the object cache (`ferry edge --cache-dir DIR`), so a restarted edge does
/// not start cold. Off the request path, hence Foundation.
///
/// One file per object, named `<FNV-1a(key)>-<FNV-1a(vary key)>.fobj` so all variants of a key can be
/// found by name. A file is written to a temporary name in the same directory and renamed over the
/// old one, so a crash leaves either the old object, the new one, or a stray temporary file (deleted
/// on load), never a truncated object. Each file carries a magic, a format version, the lengths of its
/// parts and an FNV-1a checksum over the fixed header, head and body, so a torn or corrupted file is
/// detected and deleted by `loadAll` instead of being served. No fsync: losing the last writes in a
/// power cut only costs cache misses.
///
/// File layout (integers little-endian):
///
///     0  "FRYC"           magic
///     4  UInt16 version   (1)
///     6  UInt16 0
///     8  UInt32 head length
///    12  UInt32 0
///    16  UInt64 body length
///    24  UInt64 checksum  FNV-1a of bytes 0..<24, then the head, then the body
///    32  head: key, status, request/response times, corrected initial age, vary key, header fields
///        body
public struct DiskCache: Sendable {
    public let directory: String

    static let magic: [UInt8] = Array("FRYC".utf8)
    static let version: UInt16 = 1
    static let fixedHeaderLength = 32
    static let fileExtension = ".fobj"
    static let temporarySuffix = ".tmp"

    public enum Failure: Error, Equatable {
        /// `rename(2)` of the temporary file into place failed with this errno.
        case renameFailed(errno: Int32)
    }

    /// Uses `directory`, creating it (and its parents) if needed.
    public init(directory: String) throws {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        self.directory = directory
    }

    /// Stores `object` for `key` atomically, replacing the file of the same variant.
    public func write(key: String, object: CachedObject) throws {
        let name = Self.fileName(key: key, varyKey: object.varyKey)
        let final = self.path(name)
        let temporary = self.path(".\(name).\(FNV1a.hex(UInt64.random(in: .min ... .max)))\(Self.temporarySuffix)")
        try Data(Self.encode(key: key, object: object)).write(to: URL(fileURLWithPath: temporary))
        guard rename(temporary, final) == 0 else {
            let error = errno
            try? FileManager.default.removeItem(atPath: temporary)
            throw Failure.renameFailed(errno: error)
        }
    }

    /// Deletes the file of one variant; returns whether there was one.
    @discardableResult
    public func remove(key: String, varyKey: VaryKey) -> Bool {
        (try? FileManager.default.removeItem(atPath: self.path(Self.fileName(key: key, varyKey: varyKey)))) != nil
    }

    /// Deletes the files of every variant of `key`; returns how many.
    @discardableResult
    public func remove(key: String) -> Int {
        let prefix = FNV1a.hex(FNV1a.hash(key.utf8)) + "-"
        return self.objectFiles().filter { $0.hasPrefix(prefix) }.reduce(0) { removed, name in
            removed + ((try? FileManager.default.removeItem(atPath: self.path(name))) != nil ? 1 : 0)
        }
    }

    /// Deletes the files of every key starting with `prefix`; reads each file's head to learn its key,
    /// so it costs a directory scan (purges by prefix are rare).
    @discardableResult
    public func remove(prefix: String) -> Int {
        var removed = 0
        for name in self.objectFiles() {
            guard let key = self.readKey(self.path(name)), key.utf8.starts(with: prefix.utf8) else { continue }
            if (try? FileManager.default.removeItem(atPath: self.path(name))) != nil { removed += 1 }
        }
        return removed
    }

    /// Every intact object in the directory. Files that are torn, corrupt, of another version or
    /// misnamed are deleted, as are temporary files left by a crash; run it before writers start.
    public func loadAll() -> [(key: String, object: CachedObject)] {
        var loaded: [(key: String, object: CachedObject)] = []
        let names = (try? FileManager.default.contentsOfDirectory(atPath: self.directory)) ?? []
        for name in names {
            let path = self.path(name)
            if name.hasPrefix("."), name.hasSuffix(Self.temporarySuffix) {
                try? FileManager.default.removeItem(atPath: path)
                continue
            }
            guard name.hasSuffix(Self.fileExtension) else { continue }
            if let bytes = FileManager.default.contents(atPath: path).map(Array.init),
                let entry = Self.decode(bytes),
                Self.fileName(key: entry.key, varyKey: entry.object.varyKey) == name
            {
                loaded.append(entry)
            } else {
                try? FileManager.default.removeItem(atPath: path)
            }
        }
        return loaded
    }

    static func fileName(key: String, varyKey: VaryKey) -> String {
        FNV1a.hex(FNV1a.hash(key.utf8)) + "-" + FNV1a.hex(FNV1a.hash(varyKey.description.utf8)) + fileExtension
    }

    private func path(_ name: String) -> String {
        self.directory.hasSuffix("/") ? self.directory + name : self.directory + "/" + name
    }

    private func objectFiles() -> [String] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: self.directory)) ?? []
        return names.filter { !$0.hasPrefix(".") && $0.hasSuffix(Self.fileExtension) }
    }

    /// The key of the file at `path`, reading only the fixed header and the start of the head.
    private func readKey(_ path: String) -> String? {
        guard let handle = FileHandle(forReadingAtPath: path) else { return nil }
        defer { try? handle.close() }
        guard let fixed = try? handle.read(upToCount: Self.fixedHeaderLength), fixed.count == Self.fixedHeaderLength
        else { return nil }
        var header = ByteReader(Array(fixed))
        guard header.bytes(4).map(Array.init) == Self.magic, header.u16() == Self.version, header.u16() != nil,
            let headLength = header.u32(), let head = try? handle.read(upToCount: Int(headLength))
        else { return nil }
        var reader = ByteReader(Array(head))
        return reader.string()
    }

    // MARK: - Encoding

    static func encode(key: String, object: CachedObject) -> [UInt8] {
        var head = ByteWriter()
        head.string(key)
        head.u32(UInt32(truncatingIfNeeded: object.status))
        head.double(object.requestTime)
        head.double(object.responseTime)
        head.double(object.correctedInitialAge)
        head.u32(UInt32(object.varyKey.fields.count))
        for (field, value) in zip(object.varyKey.fields, object.varyKey.values) {
            head.string(field)
            if let value {
                head.u8(1)
                head.string(value)
            } else {
                head.u8(0)
            }
        }
        head.u32(UInt32(object.headers.count))
        for field in object.headers {
            head.string(field.name)
            head.string(field.value)
        }

        var file = ByteWriter()
        let body = Array(object.body.readableBytesView)
        file.bytes.reserveCapacity(fixedHeaderLength + head.bytes.count + body.count)
        file.bytes.append(contentsOf: magic)
        file.u16(version)
        file.u16(0)
        file.u32(UInt32(head.bytes.count))
        file.u32(0)
        file.u64(UInt64(body.count))
        var checksum = FNV1a()
        checksum.update(file.bytes)
        checksum.update(head.bytes)
        checksum.update(body)
        file.u64(checksum.value)
        file.bytes.append(contentsOf: head.bytes)
        file.bytes.append(contentsOf: body)
        return file.bytes
    }

    /// The key and object in a file's bytes, or nil if anything about them is off.
    static func decode(_ bytes: [UInt8]) -> (key: String, object: CachedObject)? {
        var header = ByteReader(bytes)
        guard header.bytes(4).map(Array.init) == magic, header.u16() == version, header.u16() == 0,
            let headLength = header.u32().map(Int.init), header.u32() == 0,
            let bodyLength = header.u64(), let checksum = header.u64(),
            headLength <= bytes.count - fixedHeaderLength,
            bodyLength == UInt64(bytes.count - fixedHeaderLength - headLength)
        else { return nil }
        let headEnd = fixedHeaderLength + headLength
        var computed = FNV1a()
        computed.update(bytes[0..<24])
        computed.update(bytes[fixedHeaderLength...])
        guard computed.value == checksum else { return nil }

        var head = ByteReader(Array(bytes[fixedHeaderLength..<headEnd]))
        guard let key = head.string(), let status = head.u32(), let requestTime = head.double(),
            let responseTime = head.double(), let correctedInitialAge = head.double(),
            let varyCount = head.u32()
        else { return nil }
        var fields: [String] = []
        var values: [String?] = []
        for _ in 0..<varyCount {
            guard let field = head.string(), let present = head.u8() else { return nil }
            fields.append(field)
            if present == 1 {
                guard let value = head.string() else { return nil }
                values.append(value)
            } else {
                values.append(nil)
            }
        }
        guard let headerCount = head.u32() else { return nil }
        var headers: [(name: String, value: String)] = []
        for _ in 0..<headerCount {
            guard let name = head.string(), let value = head.string() else { return nil }
            headers.append((name: name, value: value))
        }
        guard head.isAtEnd, status <= 999, requestTime.isFinite, responseTime.isFinite, correctedInitialAge.isFinite
        else { return nil }
        let object = CachedObject(
            status: Int(status),
            storedHeaders: headers,
            body: ByteBuffer(bytes: bytes[headEnd...]),
            varyKey: VaryKey(fields: fields, values: values),
            requestTime: requestTime,
            responseTime: responseTime,
            correctedInitialAge: correctedInitialAge
        )
        return (key, object)
    }
}

/// Appends little-endian integers and length-prefixed UTF-8 strings.
private struct ByteWriter {
    var bytes: [UInt8] = []

    mutating func u8(_ value: UInt8) { self.bytes.append(value) }

    mutating func u16(_ value: UInt16) { self.little(UInt64(value), count: 2) }

    mutating func u32(_ value: UInt32) { self.little(UInt64(value), count: 4) }

    mutating func u64(_ value: UInt64) { self.little(value, count: 8) }

    mutating func double(_ value: Double) { self.u64(value.bitPattern) }

    mutating func string(_ value: String) {
        self.u32(UInt32(truncatingIfNeeded: value.utf8.count))
        self.bytes.append(contentsOf: value.utf8)
    }

    private mutating func little(_ value: UInt64, count: Int) {
        for shift in 0..<count { self.bytes.append(UInt8(truncatingIfNeeded: value >> (8 * shift))) }
    }
}

/// Reads what `ByteWriter` wrote; every read checks bounds and returns nil past the end, since the
/// bytes come from disk and may be anything.
private struct ByteReader {
    let storage: [UInt8]
    var offset = 0

    init(_ storage: [UInt8]) {
        self.storage = storage
    }

    var isAtEnd: Bool { self.offset == self.storage.count }

    mutating func bytes(_ count: Int) -> ArraySlice<UInt8>? {
        guard count >= 0, count <= self.storage.count - self.offset else { return nil }
        defer { self.offset += count }
        return self.storage[self.offset..<self.offset + count]
    }

    mutating func u8() -> UInt8? { self.bytes(1)?.first }

    mutating func u16() -> UInt16? { self.little(2).map { UInt16(truncatingIfNeeded: $0) } }

    mutating func u32() -> UInt32? { self.little(4).map { UInt32(truncatingIfNeeded: $0) } }

    mutating func u64() -> UInt64? { self.little(8) }

    mutating func double() -> Double? { self.u64().map(Double.init(bitPattern:)) }

    mutating func string() -> String? {
        guard let length = self.u32(), let bytes = self.bytes(Int(length)) else { return nil }
        return String(validating: bytes, as: UTF8.self)
    }

    private mutating func little(_ count: Int) -> UInt64? {
        guard let bytes = self.bytes(count) else { return nil }
        return bytes.reversed().reduce(0) { $0 << 8 | UInt64($1) }
    }
}

import CFerryLinux
import FerryPosix

#if canImport(Glibc)
import Glibc
#endif

/// What a write did to a key, as the log keeps it: the key's new value and version, or its
/// removal. Applying the same effects twice leaves the same state, so a log replayed over a file
/// that already holds some of it is still exact.
enum KVEffect: Equatable, Sendable {
    case set(key: String, value: [UInt8], version: UInt64)
    case delete(key: String)

    var key: String {
        switch self {
        case .set(let key, _, _), .delete(let key): key
        }
    }
}

/// The kv store's write-ahead log of its own, in front of SQLite: a file of fixed size, filled
/// with zeros when made, to which each group commit appends one record (its effects) and one
/// `fdatasync`. Since the file never grows, the sync writes data only, no inode or journal — the
/// fsync Redis's `appendfsync always` pays on an ever-growing file, and SQLite's page-sized log
/// writes, are what bounded a put.
///
/// A record: its payload's length (4 bytes), a CRC-32C of the generation and payload (4), the
/// generation (8), then the payload. The log is read from the start while records are whole,
/// their CRC holds and their generation is the first one's; a length of 0, a torn record or an
/// older generation is its end. ``reset()`` empties the first header and syncs it: what follows
/// is then dead, and the next record starts the next generation at offset 0.
final class KVLog {
    static let headerSize = 16

    let path: String
    let capacity: Int
    private let descriptor: Int32
    private var generation: UInt64
    private(set) var offset = 0

    /// The largest record one write can make (a key and a value at their limits): a log holds at
    /// least one.
    static let minimumCapacity = headerSize + 4 + 1 + 4 + KVLimits.maxKeyBytes + 8 + 4 + KVLimits.maxValueBytes

    /// Opens the log at `path`, making it (`capacity` zeros, synced) when missing or smaller. A
    /// larger file keeps its size, so that nothing written further on is missed.
    init(path: String, capacity: Int) throws {
        self.path = path
        let descriptor = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard descriptor >= 0 else { throw PosixError.system("cannot open the kv log \(path)") }
        var status = stat()
        guard fstat(descriptor, &status) == 0 else {
            close(descriptor)
            throw PosixError.system("cannot read the size of the kv log \(path)")
        }
        self.descriptor = descriptor
        self.capacity = max(capacity, Self.minimumCapacity, Int(status.st_size))
        self.generation = 0
        if Int(status.st_size) < self.capacity {
            do {
                try self.zeroFill(from: Int(status.st_size))
            } catch {
                close(self.descriptor)
                throw error
            }
        }
    }

    deinit { close(self.descriptor) }

    /// The effects of every whole record of the current generation, in the order written.
    func recover() throws -> [KVEffect] {
        var effects: [KVEffect] = []
        var offset = 0
        var first: UInt64?
        var header = [UInt8](repeating: 0, count: Self.headerSize)
        // The first header names the newest generation even when its record is torn (a header
        // lies within one sector, which a disk writes whole): the next must be newer still, or an
        // older generation's records further on could pass for the next one's.
        try self.read(&header, at: 0)
        let newest = Self.integer(UInt64.self, header, at: 8)
        guard newest < 1 << 62 else {
            throw PosixError(
                "the kv log \(self.path) is damaged",
                reason:
                    "its first header names generation \(newest); move it away to open the store without it (writes it holds that are not yet in the SQLite file are then lost)"
            )
        }
        while offset + Self.headerSize <= self.capacity {
            try self.read(&header, at: offset)
            let length = Int(Self.integer(UInt32.self, header, at: 0))
            let checksum = Self.integer(UInt32.self, header, at: 4)
            let generation = Self.integer(UInt64.self, header, at: 8)
            // An emptied log's first header still names the last generation.
            if offset == 0 && length == 0 { first = generation }
            guard length > 0, offset + Self.headerSize + length <= self.capacity,
                first == nil || generation == first
            else { break }
            var payload = [UInt8](repeating: 0, count: length)
            try self.read(&payload, at: offset + Self.headerSize)
            guard Self.checksum(generation, payload) == checksum, let decoded = Self.decode(payload) else { break }
            first = generation
            effects += decoded
            offset += Self.headerSize + length
        }
        self.generation = max(first ?? 0, newest) + 1
        return effects
    }

    /// The record of `effects`, ready for ``append(_:)``.
    func record(_ effects: [KVEffect]) -> [UInt8] {
        var payload: [UInt8] = []
        Self.append(UInt32(effects.count), to: &payload)
        for effect in effects {
            switch effect {
            case .set(let key, let value, let version):
                payload.append(1)
                Self.appendBytes(Array(key.utf8), to: &payload)
                Self.append(version, to: &payload)
                Self.appendBytes(value, to: &payload)
            case .delete(let key):
                payload.append(2)
                Self.appendBytes(Array(key.utf8), to: &payload)
            }
        }
        var record: [UInt8] = []
        record.reserveCapacity(Self.headerSize + payload.count)
        Self.append(UInt32(payload.count), to: &record)
        Self.append(Self.checksum(self.generation, payload), to: &record)
        Self.append(self.generation, to: &record)
        record += payload
        return record
    }

    /// The bytes `effect` takes in a record's payload.
    static func encodedSize(_ effect: KVEffect) -> Int {
        switch effect {
        case .set(let key, let value, _): 1 + 4 + key.utf8.count + 8 + 4 + value.count
        case .delete(let key): 1 + 4 + key.utf8.count
        }
    }

    /// Whether `record` fits after what the log holds.
    func fits(_ record: [UInt8]) -> Bool { self.offset + record.count <= self.capacity }

    /// Writes `record` after the last and syncs it: durable once this returns. On an error the
    /// next record takes its place.
    func append(_ record: [UInt8]) throws {
        guard self.fits(record) else {
            throw PosixError("cannot write the kv log \(self.path)", reason: "the record does not fit in what is left")
        }
        try self.write(record, at: self.offset)
        guard fdatasync(self.descriptor) == 0 else { throw PosixError.system("cannot sync the kv log \(self.path)") }
        self.offset += record.count
    }

    /// Ends the generation: the log reads as empty from here on. Only once every record is in the
    /// SQLite file, durably. The emptied first header keeps the generation, so that the next is
    /// always newer than any record left further on.
    func reset() throws {
        var header = [UInt8](repeating: 0, count: 8)
        Self.append(self.generation, to: &header)
        try self.write(header, at: 0)
        guard fdatasync(self.descriptor) == 0 else { throw PosixError.system("cannot sync the kv log \(self.path)") }
        self.generation += 1
        self.offset = 0
    }

    private func zeroFill(from start: Int) throws {
        let chunk = [UInt8](repeating: 0, count: 1 << 20)
        var offset = start
        while offset < self.capacity {
            let count = min(chunk.count, self.capacity - offset)
            try self.write(Array(chunk[..<count]), at: offset)
            offset += count
        }
        guard fsync(self.descriptor) == 0 else { throw PosixError.system("cannot sync the kv log \(self.path)") }
    }

    private func write(_ bytes: [UInt8], at offset: Int) throws {
        var done = 0
        while done < bytes.count {
            let written = bytes.withUnsafeBytes { buffer in
                pwrite(self.descriptor, buffer.baseAddress! + done, buffer.count - done, off_t(offset + done))
            }
            if written < 0 && errno == EINTR { continue }
            guard written > 0 else { throw PosixError.system("cannot write the kv log \(self.path)") }
            done += written
        }
    }

    private func read(_ bytes: inout [UInt8], at offset: Int) throws {
        var done = 0
        let count = bytes.count
        while done < count {
            let got = bytes.withUnsafeMutableBytes { buffer in
                pread(self.descriptor, buffer.baseAddress! + done, count - done, off_t(offset + done))
            }
            if got < 0 && errno == EINTR { continue }
            guard got > 0 else { throw PosixError.system("cannot read the kv log \(self.path)") }
            done += got
        }
    }

    private static func checksum(_ generation: UInt64, _ payload: [UInt8]) -> UInt32 {
        var littleEndian = generation.littleEndian
        let seeded = withUnsafeBytes(of: &littleEndian) { ferry_crc32c(0, $0.baseAddress, 8) }
        return payload.withUnsafeBytes { ferry_crc32c(seeded, $0.baseAddress, $0.count) }
    }

    private static func append<Integer: FixedWidthInteger>(_ value: Integer, to bytes: inout [UInt8]) {
        withUnsafeBytes(of: value.littleEndian) { bytes.append(contentsOf: $0) }
    }

    private static func appendBytes(_ value: [UInt8], to bytes: inout [UInt8]) {
        Self.append(UInt32(value.count), to: &bytes)
        bytes += value
    }

    private static func integer<Integer: FixedWidthInteger>(
        _: Integer.Type,
        _ bytes: [UInt8],
        at offset: Int
    ) -> Integer {
        var value = Integer.zero
        withUnsafeMutableBytes(of: &value) { $0.copyBytes(from: bytes[offset..<offset + MemoryLayout<Integer>.size]) }
        return Integer(littleEndian: value)
    }

    /// The effects of a payload, or nil when it does not parse (a record the CRC let through
    /// only by chance is still not applied).
    private static func decode(_ payload: [UInt8]) -> [KVEffect]? {
        var offset = 0
        func take<Integer: FixedWidthInteger>(_: Integer.Type) -> Integer? {
            guard offset + MemoryLayout<Integer>.size <= payload.count else { return nil }
            defer { offset += MemoryLayout<Integer>.size }
            return Self.integer(Integer.self, payload, at: offset)
        }
        func takeBytes() -> [UInt8]? {
            guard let count = take(UInt32.self).map(Int.init), offset + count <= payload.count else { return nil }
            defer { offset += count }
            return Array(payload[offset..<offset + count])
        }
        guard let count = take(UInt32.self) else { return nil }
        var effects: [KVEffect] = []
        for _ in 0..<count {
            guard let kind = take(UInt8.self), let key = takeBytes().map({ String(decoding: $0, as: UTF8.self) }) else {
                return nil
            }
            switch kind {
            case 1:
                guard let version = take(UInt64.self), let value = takeBytes() else { return nil }
                effects.append(.set(key: key, value: value, version: version))
            case 2: effects.append(.delete(key: key))
            default: return nil
            }
        }
        return offset == payload.count ? effects : nil
    }
}

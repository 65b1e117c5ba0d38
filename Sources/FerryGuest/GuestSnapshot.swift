import CFerryLinux
import FerryWire
import NIOCore
import WasmKit

/// A guest's execution segment at a checkpoint: everything needed to continue it in a fresh
/// instance of the same module, in this process or another.
///
/// - linear memory, which also holds the call stack that Asyncify unwound into the guest's
///   checkpoint buffer, and the C stack below `__stack_pointer`;
/// - every exported mutable global (`__stack_pointer` among them);
/// - the call it was in: the export and its arguments, called again to rewind the stack.
///
/// The module's own tables are filled by its element segments when instantiated and C guests
/// never change them, so they are not carried; a module that exports a table is refused.
///
/// Serialized form (big-endian): `FRYS`, version (2 bytes), payload length (8), payload, CRC-32 of
/// the payload (4). The payload: the module's SHA-256 (32 bytes), the epoch (8), the export and its
/// arguments, the Asyncify buffer's address, the globals by name, and memory. A snapshot with the wrong magic, an unknown version, a short or long body or
/// a bad checksum is refused before anything is restored.
public struct GuestSnapshot: Sendable, Equatable {
    public static let magic: UInt32 = 0x4652_5953  // "FRYS"
    public static let version: UInt16 = 2

    /// The SHA-256 of the module that was running: a snapshot resumes only in that module.
    public var moduleDigest: ModuleDigest
    /// The process's epoch when it was taken (0 outside a cluster): a node refuses a snapshot
    /// older than the process it claims to be.
    public var epoch: UInt64
    public var export: String
    public var arguments: [Value]
    /// Where Asyncify's data buffer is, in linear memory.
    public var asyncifyBuffer: UInt32
    public var globals: [String: Value]
    public var memory: [UInt8]

    public init(
        moduleDigest: ModuleDigest,
        epoch: UInt64 = 0,
        export: String,
        arguments: [Value],
        asyncifyBuffer: UInt32,
        globals: [String: Value],
        memory: [UInt8]
    ) {
        self.moduleDigest = moduleDigest
        self.epoch = epoch
        self.export = export
        self.arguments = arguments
        self.asyncifyBuffer = asyncifyBuffer
        self.globals = globals
        self.memory = memory
    }

    /// The bytes to store or send.
    public func serialized() -> [UInt8] {
        // One buffer, the checksum over its payload in place: snapshots are megabytes.
        var out = ByteBuffer()
        out.reserveCapacity(self.memory.count + 1024)
        out.writeInteger(Self.magic)
        out.writeInteger(Self.version)
        let lengthIndex = out.writerIndex
        out.writeInteger(UInt64(0))
        let payloadIndex = out.writerIndex
        out.writeBytes(self.moduleDigest.bytes)
        out.writeInteger(self.epoch)
        out.writeWireString(self.export)
        out.writeInteger(UInt16(self.arguments.count))
        for value in self.arguments { Self.write(value, to: &out) }
        out.writeInteger(self.asyncifyBuffer)
        out.writeInteger(UInt16(self.globals.count))
        for (name, value) in self.globals.sorted(by: { $0.key < $1.key }) {
            out.writeWireString(name)
            Self.write(value, to: &out)
        }
        out.writeWireBytes(self.memory)
        let length = out.writerIndex - payloadIndex
        out.setInteger(UInt64(length), at: lengthIndex)
        out.writeInteger(CRC32.checksum(out.readableBytesView.dropFirst(payloadIndex - out.readerIndex)))
        return Array(out.readableBytesView)
    }

    /// Reads serialized bytes, refusing anything damaged.
    public init(serialized bytes: [UInt8]) throws {
        var buffer = ByteBuffer(bytes: bytes)
        guard let magic = buffer.readInteger(as: UInt32.self), magic == Self.magic else {
            throw GuestSnapshotError.notASnapshot
        }
        guard let version = buffer.readInteger(as: UInt16.self), version == Self.version else {
            throw GuestSnapshotError.unsupportedVersion
        }
        guard let length = buffer.readInteger(as: UInt64.self), length <= UInt64(buffer.readableBytes),
            buffer.readableBytes == Int(length) + 4
        else {
            throw GuestSnapshotError.truncated(have: bytes.count)
        }
        var payload = buffer.readSlice(length: Int(length))!
        let checksum = buffer.readInteger(as: UInt32.self)!
        guard CRC32.checksum(payload.readableBytesView) == checksum else { throw GuestSnapshotError.checksumMismatch }
        let kind = MessageKind(rawValue: 0xFF)
        do {
            guard let digest = payload.readBytes(length: 32).flatMap(ModuleDigest.init(bytes:)) else {
                throw GuestSnapshotError.malformed("the module digest is cut short")
            }
            self.moduleDigest = digest
            self.epoch = try payload.readWireInteger(for: kind, field: "epoch")
            self.export = try payload.readWireString(for: kind, field: "export")
            let argumentCount = try payload.readWireInteger(UInt16.self, for: kind, field: "arguments")
            self.arguments = try (0..<argumentCount).map { _ in try Self.readValue(from: &payload) }
            self.asyncifyBuffer = try payload.readWireInteger(for: kind, field: "asyncifyBuffer")
            let globalCount = try payload.readWireInteger(UInt16.self, for: kind, field: "globals")
            self.globals = [:]
            for _ in 0..<globalCount {
                let name = try payload.readWireString(for: kind, field: "global name")
                self.globals[name] = try Self.readValue(from: &payload)
            }
            self.memory = try payload.readWireBytes(for: kind, field: "memory")
        } catch let error as GuestSnapshotError {
            throw error
        } catch {
            throw GuestSnapshotError.malformed("\(error)")
        }
    }

    /// Whether `module` is the one this snapshot was taken from.
    public func matches(_ module: GuestModule) -> Bool {
        module.digest == self.moduleDigest
    }

    private static func write(_ value: Value, to buffer: inout ByteBuffer) {
        switch value {
        case .i32(let bits):
            buffer.writeInteger(UInt8(0))
            buffer.writeInteger(UInt64(bits))
        case .i64(let bits):
            buffer.writeInteger(UInt8(1))
            buffer.writeInteger(bits)
        case .f32(let bits):
            buffer.writeInteger(UInt8(2))
            buffer.writeInteger(UInt64(bits))
        case .f64(let bits):
            buffer.writeInteger(UInt8(3))
            buffer.writeInteger(bits)
        default:
            // Vectors and references cannot cross processes; guests that checkpoint do not use them.
            buffer.writeInteger(UInt8(0xFF))
            buffer.writeInteger(UInt64(0))
        }
    }

    private static func readValue(from buffer: inout ByteBuffer) throws -> Value {
        guard let tag = buffer.readInteger(as: UInt8.self), let bits = buffer.readInteger(as: UInt64.self) else {
            throw GuestSnapshotError.malformed("a value is cut short")
        }
        switch tag {
        case 0: return .i32(UInt32(truncatingIfNeeded: bits))
        case 1: return .i64(bits)
        case 2: return .f32(UInt32(truncatingIfNeeded: bits))
        case 3: return .f64(bits)
        default: throw GuestSnapshotError.malformed("value of unknown type \(tag)")
        }
    }
}

/// Why a snapshot was refused.
public enum GuestSnapshotError: Error, Equatable, Sendable, CustomStringConvertible {
    case notASnapshot
    case unsupportedVersion
    case truncated(have: Int)
    case checksumMismatch
    case malformed(String)
    case wrongModule
    case notCheckpointable(String)

    public var description: String {
        switch self {
        case .notASnapshot: "not a Ferry guest snapshot (it does not start with FRYS)"
        case .unsupportedVersion:
            "a snapshot version this build cannot read (it reads version \(GuestSnapshot.version))"
        case .truncated(let have): "the snapshot is cut short or has trailing bytes (\(have) bytes)"
        case .checksumMismatch: "the snapshot is damaged: its checksum does not match"
        case .malformed(let reason): "the snapshot is malformed: \(reason)"
        case .wrongModule: "the snapshot was taken from another module"
        case .notCheckpointable(let reason): "this guest cannot be checkpointed: \(reason)"
        }
    }
}

/// CRC-32 (IEEE 802.3), for snapshot integrity.
enum CRC32 {
    static func checksum(_ bytes: ByteBufferView) -> UInt32 {
        bytes.withUnsafeBytes { ferry_crc32(0, $0.baseAddress, $0.count) }
    }
}

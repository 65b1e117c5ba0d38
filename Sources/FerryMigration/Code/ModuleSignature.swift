import Crypto
import FerryGuest

/// Signed code, in the WebAssembly tool-conventions module-signature format as wasmsign2 writes
/// it, so that a signed module still runs on any engine and `wasmsign2 verify` accepts what
/// `ferry sign` made (and the other way round):
///
/// ```
/// header (8) | custom section "signature" (first) | the module's sections, as they were
/// signature payload: 01 spec version | 01 content type (module) | 01 hash (SHA-256)
///   | count of signed-hash sets | per set: its length, count of hashes, hashes (32 bytes each),
///     count of signatures, per signature: its length, key id (length-prefixed, empty here),
///     01 (Ed25519), signature (length-prefixed, 64 bytes)
/// ```
///
/// The hash is SHA-256 over every byte after the signature section; Ed25519 signs
/// `"wasmsig" 01 01 01 hash`. Nothing of the module is parsed before the signature checks out:
/// one changed byte anywhere after the header is refused.
public enum ModuleSignature {
    static let sectionName = "signature"
    static let domain = Array("wasmsig".utf8)
    static let header: [UInt8] = [0x01, 0x01, 0x01]  // spec version, content type, SHA-256

    /// `module` with a signature by `key` in front of its sections. A module already signed is
    /// signed anew (its old signature section is dropped).
    ///
    /// - Throws: ``CodeRefusal`` when `module` is not a WebAssembly binary.
    public static func sign(_ module: [UInt8], with key: SigningKey) throws -> [UInt8] {
        let body = try Self.body(of: module)
        let hash = Array(SHA256.hash(data: body))
        let signature = try key.key.signature(for: Self.domain + Self.header + hash)
        var record = WasmLEB.encode(0) + [0x01]  // no key id; Ed25519
        record += WasmLEB.encode(UInt64(signature.count)) + Array(signature)
        var set = WasmLEB.encode(1) + hash + WasmLEB.encode(1)
        set += WasmLEB.encode(UInt64(record.count)) + record
        let payload = Self.header + WasmLEB.encode(1) + WasmLEB.encode(UInt64(set.count)) + set
        let named = WasmLEB.encode(UInt64(Self.sectionName.utf8.count)) + Array(Self.sectionName.utf8) + payload
        return Array(module[0..<8]) + [0x00] + WasmLEB.encode(UInt64(named.count)) + named + body
    }

    /// Which trusted key signed `module`.
    ///
    /// - Returns: the trusted key whose signature covers the module.
    /// - Throws: ``CodeRefusal`` saying why: not a module, unsigned, tampered or signed by no
    ///   trusted key.
    @discardableResult
    public static func verify(_ module: [UInt8], trusting keys: [TrustedKey]) throws -> TrustedKey {
        guard module.count >= 8, module.starts(with: [0x00, 0x61, 0x73, 0x6D]) else { throw CodeRefusal.notAModule }
        guard let (payload, rest) = Self.signatureSection(module) else { throw CodeRefusal.unsigned }
        let sets = try Self.parse(payload)
        let hash = Array(SHA256.hash(data: module[rest...]))
        var signedByTrustedKey = false
        for set in sets where set.hashes.count == 1 {
            let message = Self.domain + Self.header + set.hashes[0]
            for signature in set.signatures {
                for key in keys where key.key.isValidSignature(signature, for: message) {
                    guard set.hashes[0] == hash else {
                        signedByTrustedKey = true
                        continue
                    }
                    return key
                }
            }
        }
        if signedByTrustedKey { throw CodeRefusal.tampered }
        // No trusted signature: tell a changed module from one nobody here trusts when the hash
        // itself no longer matches what was signed.
        let hashes = sets.flatMap(\.hashes)
        if !hashes.isEmpty, !hashes.contains(hash) { throw CodeRefusal.tampered }
        throw CodeRefusal.untrusted(keys: keys.map(\.id))
    }

    /// Whether `module` starts with a signature section (signed or not by anyone trusted).
    public static func isSigned(_ module: [UInt8]) -> Bool { Self.signatureSection(module) != nil }

    /// The bytes after the header, without a signature section in front.
    private static func body(of module: [UInt8]) throws -> ArraySlice<UInt8> {
        guard module.count >= 8, module.starts(with: [0x00, 0x61, 0x73, 0x6D, 0x01, 0x00, 0x00, 0x00]) else {
            throw CodeRefusal.notAModule
        }
        if let (_, rest) = Self.signatureSection(module) { return module[rest...] }
        return module[8...]
    }

    /// The first section, when it is the custom section `signature`: its payload, and where the
    /// rest of the module starts.
    private static func signatureSection(_ module: [UInt8]) -> (ArraySlice<UInt8>, Int)? {
        guard module.count > 9, module[8] == 0x00,
            let (size, start) = WasmLEB.decode(module, at: 9), start + Int(size) <= module.count,
            let (nameLength, nameStart) = WasmLEB.decode(module, at: start),
            nameStart + Int(nameLength) <= start + Int(size),
            module[nameStart..<nameStart + Int(nameLength)].elementsEqual(Self.sectionName.utf8)
        else { return nil }
        return (module[(nameStart + Int(nameLength))..<(start + Int(size))], start + Int(size))
    }

    private struct SignedHashes {
        var hashes: [[UInt8]] = []
        var signatures: [[UInt8]] = []
    }

    /// The signed-hash sets, read by wasmsign2's rules: records of an unknown algorithm are
    /// skipped, anything cut short refuses the whole section.
    private static func parse(_ payload: ArraySlice<UInt8>) throws -> [SignedHashes] {
        var reader = Reader(bytes: Array(payload))
        guard reader.byte() == 0x01, reader.byte() == 0x01 else {
            throw CodeRefusal.malformedSignature("a signature format this build does not read")
        }
        guard reader.byte() == 0x01 else { throw CodeRefusal.malformedSignature("a hash other than SHA-256") }
        let setCount = try reader.count(limit: 64)
        var sets: [SignedHashes] = []
        for _ in 0..<setCount {
            var set = Reader(bytes: try reader.slice())
            var parsed = SignedHashes()
            for _ in 0..<(try set.count(limit: 64)) { parsed.hashes.append(try set.take(32)) }
            for _ in 0..<(try set.count(limit: 256)) {
                var record = Reader(bytes: try set.slice())
                _ = try? record.slice()  // key id: not signed, so not trusted either
                guard record.byte() == 0x01, let signature = try? record.slice(), signature.count == 64 else {
                    continue
                }
                parsed.signatures.append(signature)
            }
            sets.append(parsed)
        }
        return sets
    }

    private struct Reader {
        let bytes: [UInt8]
        var offset = 0

        mutating func byte() -> UInt8? {
            guard self.offset < self.bytes.count else { return nil }
            defer { self.offset += 1 }
            return self.bytes[self.offset]
        }

        mutating func count(limit: Int) throws -> Int {
            guard let (value, next) = WasmLEB.decode(self.bytes, at: self.offset), value <= UInt64(limit) else {
                throw CodeRefusal.malformedSignature("a count is malformed or over \(limit)")
            }
            self.offset = next
            return Int(value)
        }

        mutating func take(_ count: Int) throws -> [UInt8] {
            guard self.offset + count <= self.bytes.count else {
                throw CodeRefusal.malformedSignature("the signature section is cut short")
            }
            defer { self.offset += count }
            return Array(self.bytes[self.offset..<self.offset + count])
        }

        mutating func slice() throws -> [UInt8] {
            try self.take(self.count(limit: 1 << 20))
        }
    }
}

/// Unsigned LEB128, as the WebAssembly binary format writes integers.
enum WasmLEB {
    static func encode(_ value: UInt64) -> [UInt8] {
        var value = value
        var out: [UInt8] = []
        repeat {
            var byte = UInt8(value & 0x7F)
            value >>= 7
            if value != 0 { byte |= 0x80 }
            out.append(byte)
        } while value != 0
        return out
    }

    /// The value at `offset` and the offset after it; nil when malformed or longer than 5 bytes.
    static func decode<Bytes: RandomAccessCollection<UInt8>>(_ bytes: Bytes, at offset: Int) -> (UInt64, Int)?
    where Bytes.Index == Int {
        var result: UInt64 = 0
        var index = offset
        for shift in stride(from: 0, to: 35, by: 7) {
            guard index < bytes.endIndex else { return nil }
            let byte = bytes[index]
            result |= UInt64(byte & 0x7F) << UInt64(shift)
            index += 1
            if byte & 0x80 == 0 { return (result, index) }
        }
        return nil
    }
}

/// Why a node refuses code, before parsing any of it.
public enum CodeRefusal: Error, Equatable, Sendable, CustomStringConvertible {
    case notAModule
    case unsigned
    case tampered
    case untrusted(keys: [String])
    case malformedSignature(String)
    case digestMismatch(expected: String, got: String)

    public var description: String {
        switch self {
        case .notAModule: "not a WebAssembly module (it does not start with \\0asm)"
        case .unsigned:
            "the module is not signed (it has no signature section first); sign it with 'ferry sign', or start the node with --allow-unsigned"
        case .tampered: "the module's signature does not match its contents: it was changed after it was signed"
        case .untrusted(let keys):
            keys.isEmpty
                ? "the module is signed, but this node trusts no key (start it with --trust PUBKEYFILE)"
                : "the module is signed by a key this node does not trust (it trusts \(keys.joined(separator: ", ")))"
        case .malformedSignature(let reason): "the module's signature section is malformed: \(reason)"
        case .digestMismatch(let expected, let got): "the code received has digest \(got), not \(expected)"
        }
    }
}

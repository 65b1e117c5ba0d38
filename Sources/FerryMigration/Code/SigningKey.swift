import Crypto
import FerryGuest
import Foundation

/// An Ed25519 key that signs code, in wasmsign2's file format: `0x81`, the 32-byte seed and the
/// 32-byte public key (65 bytes). `ferry keys generate` writes it as `ferry.key`.
public struct SigningKey: Sendable {
    let key: Curve25519.Signing.PrivateKey

    /// A new random key.
    public init() {
        self.key = Curve25519.Signing.PrivateKey()
    }

    /// Reads a secret key file.
    ///
    /// - Throws: ``KeyFileError`` when the file cannot be read or is not such a key.
    public init(path: String) throws {
        let bytes = try KeyFileError.read(path)
        guard bytes.count == 65, bytes[0] == 0x81 else {
            throw KeyFileError.malformed(path: path, expected: "a secret key (0x81, then 64 bytes; wasmsign2's format)")
        }
        guard let key = try? Curve25519.Signing.PrivateKey(rawRepresentation: bytes[1..<33]),
            key.publicKey.rawRepresentation.elementsEqual(bytes[33..<65])
        else {
            throw KeyFileError.malformed(path: path, expected: "a secret key whose public half matches its seed")
        }
        self.key = key
    }

    /// The key that verifies what this one signs.
    public var trusted: TrustedKey { TrustedKey(key: self.key.publicKey) }

    /// The secret key file's bytes.
    public var fileBytes: [UInt8] {
        [0x81] + Array(self.key.rawRepresentation) + Array(self.key.publicKey.rawRepresentation)
    }
}

/// A public key a node trusts code from (`--trust FILE`): `0x01` and the 32-byte key (33 bytes,
/// wasmsign2's public key file).
public struct TrustedKey: Sendable {
    let key: Curve25519.Signing.PublicKey

    init(key: Curve25519.Signing.PublicKey) { self.key = key }

    /// Reads a public key file.
    ///
    /// - Throws: ``KeyFileError`` when the file cannot be read or is not such a key.
    public init(path: String) throws {
        let bytes = try KeyFileError.read(path)
        guard bytes.count == 33, bytes[0] == 0x01,
            let key = try? Curve25519.Signing.PublicKey(rawRepresentation: bytes[1...])
        else {
            throw KeyFileError.malformed(path: path, expected: "a public key (0x01, then 32 bytes; wasmsign2's format)")
        }
        self.key = key
    }

    /// The key's first 8 bytes in hex: how logs and errors name it.
    public var id: String { GuestValues.hex(Array(self.key.rawRepresentation.prefix(8))) }

    /// The public key file's bytes.
    public var fileBytes: [UInt8] { [0x01] + Array(self.key.rawRepresentation) }
}

/// A key file that cannot be used.
public enum KeyFileError: Error, Equatable, Sendable, CustomStringConvertible {
    case unreadable(path: String)
    case malformed(path: String, expected: String)

    public var description: String {
        switch self {
        case .unreadable(let path): "cannot read the key file \(path)"
        case .malformed(let path, let expected): "\(path) is not \(expected)"
        }
    }

    static func read(_ path: String) throws -> [UInt8] {
        guard let data = FileManager.default.contents(atPath: path) else { throw KeyFileError.unreadable(path: path) }
        return [UInt8](data)
    }
}

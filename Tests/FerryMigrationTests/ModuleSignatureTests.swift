import FerryGuest
import FerryMigration
import Foundation
import Testing

/// Signed code in the tool-conventions format, byte for byte as wasmsign2 writes it.
@Suite struct ModuleSignatureTests {
    static func bytes(_ hex: String) -> [UInt8] {
        var bytes: [UInt8] = []
        var index = hex.startIndex
        while index < hex.endIndex {
            let next = hex.index(index, offsetBy: 2)
            bytes.append(UInt8(hex[index..<next], radix: 16)!)
            index = next
        }
        return bytes
    }

    static let seed = bytes("0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f20")
    static let publicKey = bytes("79b5562e8fe654f94078b112e8a98ba7901f853ae695bed7e0e3910bad049664")

    /// Writes `bytes` to a fresh temporary file.
    static func file(_ bytes: [UInt8]) throws -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("ferry-key-\(UUID().uuidString)").path
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        return path
    }

    static func key() throws -> SigningKey { try SigningKey(path: try file([0x81] + seed + publicKey)) }

    @Test func signingWritesWhatWasmsign2Writes() throws {
        let module = Self.bytes("0061736d01000000010401600000")
        let signed = try ModuleSignature.sign(module, with: try Self.key())
        // wasmsign2's own output for this key and module (Ed25519 is deterministic).
        let expected = Self.bytes(
            "0061736d010000000075097369676e61747572650101010166015f25e6a5674a70ef44d90473c43ae014a542ccb424724dfabc21c611656167440143000140fa9050d401f46875e011217782f763ed5614a5e013eaab4bc84133fb2c60a9f620a590afcfec1f0564325529e680a6a0adccae29e2023cb7d0234fbd465b5e0f010401600000"
        )
        #expect(signed == expected)
        #expect(try Self.key().trusted.fileBytes == [0x01] + Self.publicKey)
    }

    @Test func wasmsign2sSignatureWithAKeyIdVerifies() throws {
        let signed = Self.bytes(
            "0061736d01000000008101097369676e61747572650101010172015f25e6a5674a70ef44d90473c43ae014a542ccb424724dfabc21c61165616744014f0c5a64496e13b2692d0cee20b20140fa9050d401f46875e011217782f763ed5614a5e013eaab4bc84133fb2c60a9f620a590afcfec1f0564325529e680a6a0adccae29e2023cb7d0234fbd465b5e0f010401600000"
        )
        let trusted = try TrustedKey(path: try Self.file([0x01] + Self.publicKey))
        try ModuleSignature.verify(signed, trusting: [trusted])
    }

    @Test func aSignedModuleStillRunsAndChangingAnyByteIsRefused() throws {
        let module = try GuestModule(path: Guests.path("counter"))
        let key = SigningKey()
        let signed = try ModuleSignature.sign(module.bytes, with: key)
        try ModuleSignature.verify(signed, trusting: [key.trusted])
        #expect(try GuestInstance(module: try GuestModule(bytes: signed)).invoke("increment", [.i32(2)]) == [.i32(2)])
        // One changed byte anywhere after the header, the signature included, is refused.
        for offset in stride(from: 8, to: signed.count, by: 7) {
            var tampered = signed
            tampered[offset] ^= 0x01
            #expect(throws: CodeRefusal.self) { try ModuleSignature.verify(tampered, trusting: [key.trusted]) }
        }
        var changedBody = signed
        changedBody[signed.count - 1] ^= 0xFF
        #expect(throws: CodeRefusal.tampered) { try ModuleSignature.verify(changedBody, trusting: [key.trusted]) }
    }

    @Test func unsignedAndUntrustedModulesAreRefusedWithTheReason() throws {
        let module = try GuestModule(path: Guests.path("counter")).bytes
        let key = SigningKey()
        #expect(throws: CodeRefusal.unsigned) { try ModuleSignature.verify(module, trusting: [key.trusted]) }
        let other = SigningKey()
        #expect(throws: CodeRefusal.untrusted(keys: [key.trusted.id])) {
            try ModuleSignature.verify(try ModuleSignature.sign(module, with: other), trusting: [key.trusted])
        }
        #expect(throws: CodeRefusal.notAModule) { try ModuleSignature.verify(Array("hello".utf8), trusting: []) }
    }

    @Test func signingAgainReplacesTheSignature() throws {
        let module = try GuestModule(path: Guests.path("counter")).bytes
        let first = SigningKey()
        let second = SigningKey()
        let twice = try ModuleSignature.sign(try ModuleSignature.sign(module, with: first), with: second)
        try ModuleSignature.verify(twice, trusting: [second.trusted])
        #expect(throws: CodeRefusal.self) { try ModuleSignature.verify(twice, trusting: [first.trusted]) }
    }

    @Test func keyFilesThatAreNotKeysAreRefused() throws {
        #expect(throws: KeyFileError.self) { try SigningKey(path: try Self.file([0x01] + Self.publicKey)) }
        #expect(throws: KeyFileError.self) { try TrustedKey(path: try Self.file([0x81] + Self.seed)) }
        #expect(throws: KeyFileError.unreadable(path: "/nonexistent/ferry.key")) {
            try SigningKey(path: "/nonexistent/ferry.key")
        }
    }
}

/// The example guests under Guests/.
enum Guests {
    static let folder = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("Guests")

    static func path(_ name: String) -> String { Self.folder.appendingPathComponent("\(name).wasm").path }
}

import FerryGuest
import FerryMigration
import Foundation
import Testing

/// The code segment a node keeps: content-addressed, signature first.
@Suite struct CodeStoreTests {
    static func directory() -> String {
        FileManager.default.temporaryDirectory.appendingPathComponent("ferry-code-\(UUID().uuidString)").path
    }

    @Test func aSignedModuleIsKeptByItsDigestAcrossRestarts() throws {
        let key = SigningKey()
        let signed = try ModuleSignature.sign(try GuestModule(path: Guests.path("counter")).bytes, with: key)
        let digest = ModuleDigest(of: signed)
        let folder = Self.directory()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let store = try CodeStore(directory: folder, trust: .init(keys: [key.trusted]))
        #expect(!store.has(digest))
        try store.admit(signed, expected: digest)
        #expect(store.has(digest) && store.bytes(of: digest) == signed)
        let again = try CodeStore(directory: folder, trust: .init(keys: [key.trusted]))
        #expect(try again.module(digest)?.digest == digest, "read back from disk after a restart")
    }

    @Test func codeIsRefusedBeforeItIsParsed() throws {
        let key = SigningKey()
        let store = try CodeStore(directory: nil, trust: .init(keys: [key.trusted]))
        let plain = try GuestModule(path: Guests.path("counter")).bytes
        #expect(throws: CodeRefusal.unsigned) { try store.admit(plain) }
        let signed = try ModuleSignature.sign(plain, with: key)
        #expect(throws: CodeRefusal.self) { try store.admit(signed, expected: ModuleDigest(of: plain)) }
        // Garbage that is signed is refused by the parser, after the signature: never run.
        let garbage = try ModuleSignature.sign([0x00, 0x61, 0x73, 0x6D, 0x01, 0x00, 0x00, 0x00, 0x01, 0xFF], with: key)
        #expect(throws: GuestError.self) { try store.admit(garbage) }
        let loose = try CodeStore(directory: nil, trust: .init(allowUnsigned: true))
        #expect(try loose.admit(plain).digest == ModuleDigest(of: plain))
    }
}

import FerryGuest
import Foundation
import NIOConcurrencyHelpers

/// A node's code segment cache: modules by their SHA-256, admitted only once their signature
/// checks out against the keys the node trusts, kept on disk (`DATA/code/DIGEST.wasm`) when the
/// node has a data directory, so that a move or spawn sends code only to a node that lacks it.
public final class CodeStore: Sendable {
    /// Whose code a node runs.
    public struct Trust: Sendable {
        public var keys: [TrustedKey]
        /// Run any valid module, signed or not (`--allow-unsigned`).
        public var allowUnsigned: Bool
        /// Run native programs in containers for any peer that asks (`--allow-containers`): they
        /// are not sandboxed like guests, so a node refuses them unless its operator says so.
        public var allowContainers: Bool

        public init(keys: [TrustedKey] = [], allowUnsigned: Bool = false, allowContainers: Bool = false) {
            self.keys = keys
            self.allowUnsigned = allowUnsigned
            self.allowContainers = allowContainers
        }
    }

    public let trust: Trust
    private let directory: String?
    private let modules = NIOLockedValueBox<[ModuleDigest: GuestModule]>([:])

    /// - Parameter directory: where admitted modules are kept across restarts; nil keeps them in
    ///   memory only.
    public init(directory: String?, trust: Trust) throws {
        self.directory = directory
        self.trust = trust
        if let directory {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        }
    }

    /// Whether the module `digest` is here.
    public func has(_ digest: ModuleDigest) -> Bool {
        if self.modules.withLockedValue({ $0[digest] != nil }) { return true }
        return self.path(of: digest).map { FileManager.default.fileExists(atPath: $0) } ?? false
    }

    /// The module's bytes as they were admitted (signature included), to send to another node.
    public func bytes(of digest: ModuleDigest) -> [UInt8]? {
        if let module = self.modules.withLockedValue({ $0[digest] }) { return module.bytes }
        return self.path(of: digest).flatMap { FileManager.default.contents(atPath: $0) }.map { [UInt8]($0) }
    }

    /// Checks `bytes` — the signature first, before anything of the module is parsed; then the
    /// module itself — and keeps it.
    ///
    /// - Parameter expected: the digest the sender named, which the bytes must have.
    /// - Throws: ``CodeRefusal`` (unsigned, tampered, untrusted, another digest) or a
    ///   ``GuestError`` (not valid WebAssembly).
    @discardableResult
    public func admit(_ bytes: [UInt8], expected: ModuleDigest? = nil) throws -> GuestModule {
        let digest = ModuleDigest(of: bytes)
        if let expected, expected != digest {
            throw CodeRefusal.digestMismatch(expected: expected.hex, got: digest.hex)
        }
        if let module = self.modules.withLockedValue({ $0[digest] }) { return module }
        try self.check(bytes)
        let module = try GuestModule(bytes: bytes, name: digest.short)
        if let path = self.path(of: digest), !FileManager.default.fileExists(atPath: path) {
            // Written whole, then renamed: a crash leaves either nothing or the whole module.
            let temporary = path + ".partial"
            try Data(bytes).write(to: URL(fileURLWithPath: temporary))
            _ = rename(temporary, path)
        }
        self.modules.withLockedValue { $0[digest] = module }
        return module
    }

    /// The module `digest`, if it is here (read from disk, and checked again, after a restart).
    public func module(_ digest: ModuleDigest) throws -> GuestModule? {
        if let module = self.modules.withLockedValue({ $0[digest] }) { return module }
        guard let bytes = self.bytes(of: digest) else { return nil }
        return try self.admit(bytes, expected: digest)
    }

    /// How many modules are held in memory.
    public var count: Int { self.modules.withLockedValue { $0.count } }

    /// The trust policy applied to `bytes`.
    public func check(_ bytes: [UInt8]) throws {
        if self.trust.allowUnsigned { return }
        try ModuleSignature.verify(bytes, trusting: self.trust.keys)
    }

    private func path(of digest: ModuleDigest) -> String? {
        self.directory.map { "\($0)/\(digest.hex).wasm" }
    }
}

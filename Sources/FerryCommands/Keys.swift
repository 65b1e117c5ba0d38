import ArgumentParser
import FerryGuest
import FerryMigration
import Foundation

/// `ferry keys generate`: a key pair to sign code with.
struct KeysCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "keys",
        abstract: "Make keys to sign code with.",
        subcommands: [Generate.self]
    )

    struct Generate: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "generate",
            abstract:
                "Write a new Ed25519 key pair: DIR/ferry.key (secret) and DIR/ferry.pub (public), in wasmsign2's format."
        )

        @Option(help: "The directory to write them to (made if missing).")
        var out: String

        func run() async throws {
            try FileManager.default.createDirectory(atPath: self.out, withIntermediateDirectories: true)
            let key = SigningKey()
            let secret = self.out + "/ferry.key"
            guard !FileManager.default.fileExists(atPath: secret) else {
                throw CommandFailure("\(secret) exists already; remove it or give another --out")
            }
            try writeFile(secret, key.fileBytes, mode: 0o600)
            try writeFile(self.out + "/ferry.pub", key.trusted.fileBytes, mode: 0o644)
            printLine("wrote \(secret) and \(self.out)/ferry.pub (key \(key.trusted.id))")
        }
    }
}

/// `ferry sign`: sign a module.
struct SignCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sign",
        abstract:
            "Sign a module (the tool-conventions signature section, as wasmsign2 writes it): it still runs anywhere."
    )

    @Argument(help: "The module.")
    var module: String

    @Option(help: "The secret key (ferry.key).")
    var key: String

    @Option(help: "Where to write the signed module.")
    var out: String

    func run() async throws {
        let (bytes, _) = try readModule(self.module)
        let signed = try ModuleSignature.sign(bytes, with: try SigningKey(path: self.key))
        try writeFile(self.out, signed, mode: 0o644)
        printLine("signed \(self.module) into \(self.out) (\(ModuleDigestText.of(signed)))")
    }
}

/// `ferry verify`: check a module's signature.
struct VerifyCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "verify",
        abstract: "Check that a module is signed by a trusted key and unchanged since; exits 1 when not."
    )

    @Argument(help: "The signed module.")
    var module: String

    @Option(help: ArgumentHelp("A public key to trust (repeat for more).", valueName: "PUBKEYFILE"))
    var trust: [String]

    func run() async throws {
        let (bytes, _) = try readModule(self.module)
        do {
            let key = try ModuleSignature.verify(bytes, trusting: try self.trust.map(TrustedKey.init(path:)))
            printLine("\(self.module): signed by \(key.id), unchanged (\(ModuleDigestText.of(bytes)))")
        } catch let refusal as CodeRefusal {
            throw CommandFailure("\(self.module): \(refusal)")
        }
    }
}

enum ModuleDigestText {
    static func of(_ bytes: [UInt8]) -> String { "sha256 " + ModuleDigest(of: bytes).hex }
}

func writeFile(_ path: String, _ bytes: [UInt8], mode: Int) throws {
    guard FileManager.default.createFile(atPath: path, contents: Data(bytes), attributes: [.posixPermissions: mode])
    else {
        throw CommandFailure("cannot write \(path)")
    }
}

import Foundation

/// The secret that the control API's actions need (`Authorization: Bearer TOKEN`): made once,
/// kept in a file only its owner can read, and read back by every process of the cluster.
public enum ConsoleToken {
    /// Its file's name in a data directory.
    public static let fileName = "control-token"

    /// The token in `path`, made there first (0600) when the file does not exist yet.
    public static func loadOrCreate(at path: String) throws -> String {
        if let data = FileManager.default.contents(atPath: path) {
            let token = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
            guard token.count >= 32 else {
                throw ConsoleError.badRequest("the token file \(path) holds no token; remove it to have a new one made")
            }
            return token
        }
        var generator = SystemRandomNumberGenerator()
        let token = (0..<32).map { _ in String(format: "%02x", UInt8.random(in: 0...255, using: &generator)) }.joined()
        let directory = (path as NSString).deletingLastPathComponent
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        guard
            FileManager.default.createFile(
                atPath: path,
                contents: Data(token.utf8),
                attributes: [.posixPermissions: 0o600]
            )
        else { throw ConsoleError.unavailable("cannot write the control token to \(path)") }
        return token
    }

    /// Compares in time independent of where the strings differ.
    static func matches(_ given: Substring, _ token: String) -> Bool {
        let given = Array(given.utf8)
        let token = Array(token.utf8)
        guard given.count == token.count else { return false }
        return zip(given, token).reduce(UInt8(0)) { $0 | ($1.0 ^ $1.1) } == 0
    }
}

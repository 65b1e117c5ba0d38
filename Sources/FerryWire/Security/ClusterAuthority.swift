import Crypto
import Foundation
import SwiftASN1
import X509

#if canImport(Glibc)
import Glibc
#endif

/// A cluster's certificate authority: the one key whose signature makes a peer a member. `ferry ca
/// init` makes it in a data directory's `tls/`, with a certificate for the machine it runs on;
/// `ferry ca issue NAME` signs one for another machine, to be copied into that machine's `tls/`.
///
/// A credentials directory holds `ca.pem` (the authority's certificate, on every member),
/// `cert.pem` and `key.pem` (this member's), and, only where the authority was made,
/// `ca-key.pem`. Keys are ECDSA P-256; files holding keys are written 0600.
public struct ClusterAuthority: Sendable {
    public static let certificateFile = "ca.pem"
    public static let keyFile = "ca-key.pem"

    let certificate: Certificate
    let key: Certificate.PrivateKey

    /// Makes a new authority in `directory` (created when missing), and a certificate for this
    /// machine (`memberName`, by default its host name) signed by it. Refuses to replace an
    /// authority already there: its members would be cut off.
    @discardableResult
    public static func create(in directory: String, memberName: String = Self.thisMachine) throws -> ClusterAuthority {
        let manager = FileManager.default
        guard !manager.fileExists(atPath: directory + "/" + Self.keyFile),
            !manager.fileExists(atPath: directory + "/" + Self.certificateFile)
        else {
            throw ClusterCredentialsError(
                "\(directory) already holds a cluster authority; remove \(Self.certificateFile) and \(Self.keyFile) to make a new one (every member then needs a new certificate)"
            )
        }
        try manager.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let key = Certificate.PrivateKey(P256.Signing.PrivateKey())
        let name = try DistinguishedName {
            OrganizationName("Ferry")
            CommonName("Ferry cluster authority \(UUID().uuidString.prefix(8).lowercased())")
        }
        let authority = ClusterAuthority(
            certificate: try Self.sign(
                name,
                key: key,
                issuer: name,
                issuerKey: key,
                years: 10,
                extensions: try Certificate.Extensions {
                    Critical(BasicConstraints.isCertificateAuthority(maxPathLength: 0))
                    Critical(KeyUsage(keyCertSign: true, cRLSign: true))
                }
            ),
            key: key
        )
        try Self.write(authority.certificate, key: key, into: directory, Self.certificateFile, Self.keyFile)
        try authority.issue(memberName, into: directory)
        return authority
    }

    /// This machine's host name, without its domain: the name `create` issues its certificate to.
    public static var thisMachine: String {
        ProcessInfo.processInfo.hostName.split(separator: ".").first.map(String.init) ?? "ferry"
    }

    /// The authority kept in `directory`.
    public static func load(from directory: String) throws -> ClusterAuthority {
        let keyPath = directory + "/" + Self.keyFile
        guard let keyText = try? String(contentsOfFile: keyPath, encoding: .utf8) else {
            throw ClusterCredentialsError(
                "no cluster authority in \(directory) (\(Self.keyFile) is missing): run 'ferry ca init' there first, or issue from the machine that did"
            )
        }
        let certificateText = try String(contentsOfFile: directory + "/" + Self.certificateFile, encoding: .utf8)
        return ClusterAuthority(
            certificate: try Certificate(pemEncoded: certificateText),
            key: try Certificate.PrivateKey(pemEncoded: keyText)
        )
    }

    /// Signs a certificate for member `name` and writes a credentials directory for it to
    /// `directory`: `ca.pem`, `cert.pem` and `key.pem`. The certificate serves both ends of a
    /// connection (server and client authentication); peers check the chain, not a host name,
    /// so it works at any address.
    public func issue(_ name: String, into directory: String) throws {
        guard !name.isEmpty, !name.contains("/") else {
            throw ClusterCredentialsError("a member's name is a word such as 'node-2', got '\(name)'")
        }
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let key = Certificate.PrivateKey(P256.Signing.PrivateKey())
        let certificate = try Self.sign(
            try DistinguishedName {
                OrganizationName("Ferry")
                CommonName(name)
            },
            key: key,
            issuer: self.certificate.subject,
            issuerKey: self.key,
            years: 5,
            extensions: try Certificate.Extensions {
                Critical(BasicConstraints.notCertificateAuthority)
                Critical(KeyUsage(digitalSignature: true))
                try ExtendedKeyUsage([.serverAuth, .clientAuth])
                SubjectAlternativeNames([.dnsName(name), .dnsName("localhost")])
            }
        )
        try Self.write(
            certificate,
            key: key,
            into: directory,
            ClusterCredentials.certificateFile,
            ClusterCredentials.keyFile
        )
        try Self.write(try self.certificate.serializeAsPEM().pemString, to: directory + "/" + Self.certificateFile)
    }

    /// A certificate for `subject`'s `key`, signed by `issuerKey`, valid from five minutes ago
    /// (clocks differ a little) for `years`.
    private static func sign(
        _ subject: DistinguishedName,
        key: Certificate.PrivateKey,
        issuer: DistinguishedName,
        issuerKey: Certificate.PrivateKey,
        years: Double,
        extensions: Certificate.Extensions
    ) throws -> Certificate {
        let now = Date()
        return try Certificate(
            version: .v3,
            serialNumber: Certificate.SerialNumber(),
            publicKey: key.publicKey,
            notValidBefore: now.addingTimeInterval(-300),
            notValidAfter: now.addingTimeInterval(years * 365 * 86_400),
            issuer: issuer,
            subject: subject,
            signatureAlgorithm: .ecdsaWithSHA256,
            extensions: extensions,
            issuerPrivateKey: issuerKey
        )
    }

    /// Writes a certificate and its key (0600) as PEM files in `directory`.
    private static func write(
        _ certificate: Certificate,
        key: Certificate.PrivateKey,
        into directory: String,
        _ certificateFile: String,
        _ keyFile: String
    ) throws {
        try Self.write(try key.serializeAsPEM().pemString, to: directory + "/" + keyFile, secret: true)
        try Self.write(try certificate.serializeAsPEM().pemString, to: directory + "/" + certificateFile)
    }

    /// Writes `text` whole (a temporary file renamed over), 0600 when it holds a key.
    private static func write(_ text: String, to path: String, secret: Bool = false) throws {
        let temporary = path + ".tmp"
        guard
            FileManager.default.createFile(
                atPath: temporary,
                contents: Data(text.utf8),
                attributes: [.posixPermissions: secret ? 0o600 : 0o644]
            )
        else { throw ClusterCredentialsError("cannot write \(path)") }
        guard rename(temporary, path) == 0 else {
            throw ClusterCredentialsError("cannot write \(path): \(String(cString: strerror(errno)))")
        }
    }
}

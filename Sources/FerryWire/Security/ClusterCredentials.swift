import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOSSL

/// A member's credentials: its certificate and key and the cluster authority's certificate,
/// made into the TLS contexts every FerryWire connection between Ferry processes uses. TLS 1.3
/// only, both ends present a certificate, and a peer is taken when its chain leads to this
/// cluster's authority (no host name is checked: membership is the signature, at any address).
public struct ClusterCredentials: Sendable {
    public static let certificateFile = "cert.pem"
    public static let keyFile = "key.pem"
    /// Where a data directory keeps its credentials.
    public static func directory(inDataDirectory data: String) -> String { data + "/tls" }

    public let directory: String
    /// Made on the first connection accepted: a process that only connects (`ferry endpoints
    /// lookup` in a TLS cluster) never pays for a second context.
    let server: ServerContext
    let client: NIOSSLContext

    /// Whether `directory` holds credentials (a `cert.pem`), which ``load(from:)`` would load.
    public static func exist(in directory: String) -> Bool {
        access(directory + "/" + Self.certificateFile, F_OK) == 0
    }

    /// The credentials in `directory`, or `nil` when it has none (no `cert.pem`).
    /// - Throws: when they are there but incomplete or unreadable; the error names the file.
    public static func load(from directory: String) throws -> ClusterCredentials? {
        guard Self.exist(in: directory) else { return nil }
        func read<T>(_ file: String, _ parse: (String) throws -> T) throws -> T {
            let path = directory + "/" + file
            guard FileManager.default.fileExists(atPath: path) else {
                throw ClusterCredentialsError("\(path) is missing: a member needs ca.pem, cert.pem and key.pem")
            }
            do {
                return try parse(path)
            } catch {
                throw ClusterCredentialsError("cannot read \(path): \(error)")
            }
        }
        let chain = try read(Self.certificateFile) { try NIOSSLCertificate.fromPEMFile($0) }
        let key = try read(Self.keyFile) { try NIOSSLPrivateKey(file: $0, format: .pem) }
        let authority = try read(ClusterAuthority.certificateFile) { try NIOSSLCertificate.fromPEMFile($0) }

        var server = TLSConfiguration.makeServerConfiguration(
            certificateChain: chain.map { .certificate($0) },
            privateKey: .privateKey(key)
        )
        var client = TLSConfiguration.makeClientConfiguration()
        client.certificateChain = chain.map { .certificate($0) }
        client.privateKey = .privateKey(key)
        Self.memberOnly(&server, authority: authority)
        Self.memberOnly(&client, authority: authority)
        return ClusterCredentials(
            directory: directory,
            server: ServerContext(server),
            client: try NIOSSLContext(configuration: client)
        )
    }

    /// The server side's TLS context, made once, when first needed, from a configuration whose
    /// parts (certificate, key, authority) ``load(from:)`` has already read and parsed.
    final class ServerContext: Sendable {
        private let configuration: TLSConfiguration
        private let made = NIOLockedValueBox<NIOSSLContext?>(nil)

        init(_ configuration: TLSConfiguration) { self.configuration = configuration }

        func context() throws -> NIOSSLContext {
            try self.made.withLockedValue { made in
                if let made { return made }
                let context = try NIOSSLContext(configuration: self.configuration)
                made = context
                return context
            }
        }
    }
}

extension ClusterCredentials {
    /// TLS 1.3, a certificate required of the peer, and only this cluster's authority trusted.
    fileprivate static func memberOnly(_ configuration: inout TLSConfiguration, authority: [NIOSSLCertificate]) {
        configuration.minimumTLSVersion = .tlsv13
        configuration.trustRoots = .certificates(authority)
        configuration.certificateVerification = .noHostnameVerification
    }
}

public struct ClusterCredentialsError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

extension ChannelPipeline.SynchronousOperations {
    /// Puts TLS in front of a connection accepted by a server (FerryWire's, the migration port's).
    public func addServerTLS(_ credentials: ClusterCredentials) throws {
        try self.addHandler(NIOSSLServerHandler(context: try credentials.server.context()), position: .first)
    }

    /// Puts TLS in front of a connection a client opened.
    public func addClientTLS(_ credentials: ClusterCredentials) throws {
        try self.addHandler(
            try NIOSSLClientHandler(context: credentials.client, serverHostname: nil),
            position: .first
        )
    }
}

/// What a failed TLS handshake means for a cluster member, in a few words instead of BoringSSL's.
public enum HandshakeFailure {
    public static func reason(_ error: any Error) -> String {
        let text = "\(error)"
        let known: [(String, String)] = [
            ("WRONG_VERSION_NUMBER", "it spoke without TLS (a process without the cluster's credentials)"),
            ("HTTP_REQUEST", "it spoke HTTP, not FerryWire over TLS"),
            ("UNKNOWN_CA", "its certificate is not from this cluster's authority"),
            ("CERTIFICATE_VERIFY_FAILED", "the certificate is not from this cluster's authority"),
            ("PEER_DID_NOT_RETURN_A_CERTIFICATE", "it presented no certificate"),
            ("CERTIFICATE_REQUIRED", "it presented no certificate"),
            ("CERTIFICATE_EXPIRED", "the certificate has expired"),
        ]
        return known.first { text.contains($0.0) }?.1 ?? text
    }

    /// The one line a server logs for a peer it refused: what it lacked, and what would admit it.
    public static func refusal(of peer: String, _ error: any Error) -> String {
        "refused FerryWire peer \(peer): \(Self.reason(error)); a member needs a certificate from this cluster's authority ('ferry ca issue NAME')"
    }
}

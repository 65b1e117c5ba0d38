import FerryWire
import Foundation
import Logging
import NIOSSL
import PostgresNIO

/// A PostgreSQL database that Ferry keeps state in, named by a URL:
/// `postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?sslmode=disable|prefer|require]`.
/// It holds a pool of connections (postgres-nio's `PostgresClient`), run until ``close()``.
public final class PostgresDatabase: Sendable {
    public let client: PostgresClient
    /// The URL without its password, for messages.
    public let name: String
    let logger: Logger
    /// One connection made at open, apart from the pool: a server that cannot be reached is
    /// then said at once, not after the pool's retries.
    private let probe: PostgresConnection.Configuration
    private let running: Task<Void, Never>

    /// Connects lazily: the first query opens the first connection.
    ///
    /// - Throws: ``PostgresURLError`` when `url` is not a PostgreSQL URL.
    public init(url: String, logger: Logger) throws {
        let (configuration, probe, name) = try Self.configuration(url)
        // The pool logs each failed connection attempt; the requests that fail say it once.
        var quiet = logger
        quiet.logLevel = .error
        self.client = PostgresClient(configuration: configuration, backgroundLogger: quiet)
        self.probe = probe
        self.name = name
        self.logger = quiet
        let client = self.client
        self.running = Task { await client.run() }
    }

    /// Whether `text` names a PostgreSQL database rather than a file.
    public static func isURL(_ text: String) -> Bool {
        text.hasPrefix("postgres://") || text.hasPrefix("postgresql://")
    }

    static func configuration(
        _ url: String
    ) throws
        -> (PostgresClient.Configuration, PostgresConnection.Configuration, String)
    {
        guard Self.isURL(url), let parts = URLComponents(string: url), let host = parts.host, !host.isEmpty,
            let user = parts.user, !user.isEmpty
        else {
            throw PostgresURLError(url: url)
        }
        let database = String(parts.path.dropFirst())
        let query = Dictionary(
            (parts.queryItems ?? []).map { ($0.name, $0.value ?? "") },
            uniquingKeysWith: { $1 }
        )
        let tls: PostgresClient.Configuration.TLS
        let probeTLS: PostgresConnection.Configuration.TLS
        switch query["sslmode"] ?? "prefer" {
        case "disable":
            tls = .disable
            probeTLS = .disable
        case "prefer", "allow":
            tls = .prefer(.makeClientConfiguration())
            probeTLS = .prefer(try NIOSSLContext(configuration: .makeClientConfiguration()))
        case "require":
            tls = .require(.makeClientConfiguration())
            probeTLS = .require(try NIOSSLContext(configuration: .makeClientConfiguration()))
        default: throw PostgresURLError(url: url)
        }
        var configuration = PostgresClient.Configuration(
            host: host,
            port: parts.port ?? 5432,
            username: user,
            password: parts.password,
            database: database.isEmpty ? nil : database,
            tls: tls
        )
        configuration.options.connectTimeout = .seconds(5)
        configuration.options.maximumConnections = 8
        var probe = PostgresConnection.Configuration(
            host: host,
            port: parts.port ?? 5432,
            username: user,
            password: parts.password,
            database: database.isEmpty ? nil : database,
            tls: probeTLS
        )
        probe.options.connectTimeout = .seconds(5)
        let name = "postgres://\(user)@\(host):\(parts.port ?? 5432)/\(database)"
        return (configuration, probe, name)
    }

    /// Connects to the database at `url` and makes `tables` when they are missing; `store` names
    /// what opens it, for the error that says it could not.
    static func open(
        url: String,
        logger: Logger,
        store: String,
        tables: [PostgresQuery]
    ) async throws
        -> PostgresDatabase
    {
        let database = try PostgresDatabase(url: url, logger: logger)
        do {
            try await database.migrate(tables)
        } catch {
            database.close()
            throw ErrorMessage(
                code: .unavailable,
                message:
                    "cannot open the \(store) at \(database.name): \(Self.reason(error)); is the server up, and may this user create tables there?"
            )
        }
        return database
    }

    /// Runs `statements` once, as one transaction (a store's tables, made if missing), after
    /// checking that the server takes a connection.
    private func migrate(_ statements: [PostgresQuery]) async throws {
        let connection = try await PostgresConnection.connect(configuration: self.probe, id: 0, logger: self.logger)
        try await connection.close()
        try await self.client.withTransaction(logger: self.logger) { connection in
            // Servers starting together would race to create the same tables (PostgreSQL's
            // IF NOT EXISTS does not guard against that): one migrates at a time.
            try await connection.query("SELECT pg_advisory_xact_lock(\(Self.migrationLock))", logger: self.logger)
            for statement in statements { try await connection.query(statement, logger: self.logger) }
        }
    }

    /// The advisory lock that makes migrations take turns ("ferry" in ASCII).
    static let migrationLock: Int64 = 0x6665_7272_79

    public func close() {
        self.running.cancel()
    }

    /// What a driver's error says, in one line (postgres-nio hides the server's message from
    /// `description` unless asked).
    static func reason(_ error: any Error) -> String {
        if let failed = error as? PostgresTransactionError {
            let cause = failed.closureError ?? failed.beginError ?? failed.commitError ?? failed.rollbackError
            return cause.map(Self.reason) ?? "the transaction failed"
        }
        guard let error = error as? PSQLError else { return "\(error)" }
        if let message = error.serverInfo?[.message] { return message }
        let underlying = error.underlying.map { "\($0)" } ?? ""
        if underlying.contains("refused") { return "connection refused (nothing listens there)" }
        if underlying.contains("timed out") || underlying.contains("Timeout") { return "connection timed out" }
        if underlying.contains("resolve") || underlying.contains("Name or service") { return "no such host" }
        return underlying.isEmpty ? "\(error.code)" : underlying
    }
}

/// A `--store` or `--db` value that looked like a PostgreSQL URL but is not one.
public struct PostgresURLError: Error, CustomStringConvertible {
    public var url: String
    public var description: String {
        "'\(url)' is not a PostgreSQL URL; give postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?sslmode=disable|prefer|require]"
    }
}

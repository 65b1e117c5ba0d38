import Testing

/// Where a test's durable state is kept: a SQLite file, or a database of the test's own on a real
/// PostgreSQL server (``PostgresServer``). The stores' suites run on each backend this machine has.
public enum StateBackend: String, CaseIterable, Sendable, CustomTestStringConvertible {
    case sqlite, postgres
    public var testDescription: String { self.rawValue }
    /// The backends this machine can run: PostgreSQL only where it is installed.
    public static var available: [StateBackend] { PostgresServer.binaries == nil ? [.sqlite] : [.sqlite, .postgres] }
}

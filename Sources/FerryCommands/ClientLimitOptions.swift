import ArgumentParser
import FerryHTTP

/// How long an HTTP server's clients may keep it waiting, and how many connections one address
/// may hold: the flags of every command that serves HTTP to clients.
struct ClientLimitOptions: ParsableArguments {
    @Option(help: "Seconds a client may take to send a request head, counted from its first byte.")
    var headerTimeout = 10.0

    @Option(help: "Seconds a request body may pause between two reads (where the server takes bodies).")
    var bodyTimeout = 30.0

    @Option(help: "Seconds a keep-alive connection may stay idle between requests.")
    var idleTimeout = 60.0

    @Option(help: "Connections one client address may hold open; 0 for no cap.")
    var maxConnectionsPerSource: Int?

    func validate() throws {
        _ = try self.timeouts()
        if let cap = self.maxConnectionsPerSource, cap < 0 {
            throw ValidationError("--max-connections-per-source takes 0 (no cap) or more, got \(cap)")
        }
    }

    func timeouts() throws -> ClientTimeouts {
        do {
            return ClientTimeouts(
                header: try ClientTimeouts.seconds(self.headerTimeout, flag: "--header-timeout"),
                body: try ClientTimeouts.seconds(self.bodyTimeout, flag: "--body-timeout"),
                idle: try ClientTimeouts.seconds(self.idleTimeout, flag: "--idle-timeout")
            )
        } catch {
            throw ValidationError(error.description)
        }
    }
}

import ArgumentParser
import FerryEndpoints
import FerryKV
import FerryServer
import Logging

/// A client connection a command opens for one job.
protocol ClosableClient {
    func close() async
}

extension EndpointClient: ClosableClient {}
extension KVClient: ClosableClient {}

/// Runs `body` with `client` and closes the client after, whether `body` returned or threw.
func using<Client: ClosableClient, Result>(
    _ client: Client,
    _ body: (Client) async throws -> Result
) async throws -> Result {
    try await using(client, closing: { await $0.close() }, body)
}

/// The same for a client closed by `close` (an existential such as `any Registry`, which
/// cannot conform to ``ClosableClient``).
func using<Client, Result>(
    _ client: Client,
    closing close: (Client) async -> Void,
    _ body: (Client) async throws -> Result
) async throws -> Result {
    do {
        let result = try await body(client)
        await close(client)
        return result
    } catch {
        await close(client)
        throw error
    }
}

/// Runs `body` with a connection to `registry` and closes it after, whether `body` returned or
/// threw.
func withRegistry<Result>(
    _ registry: RegistryAddress,
    _ body: (any Registry) async throws -> Result
) async throws -> Result {
    try await using(
        try await registry.connect(logger: Logger(label: "ferry.registry")),
        closing: { await $0.close() },
        body
    )
}

/// One request to a running part's control socket (its `--control PATH`), which `command` (as the
/// user would start it) listens on; an `error: ` answer is printed and ends the command with 1.
func controlRequest(_ line: String, at path: String, runningCommand command: String) async throws -> String {
    let answer = try await ControlSocket.request(line, at: path, runningCommand: "\(command) --control \(path)")
    guard !answer.hasPrefix("error: ") else {
        printError(answer)
        throw ExitCode(1)
    }
    return answer
}

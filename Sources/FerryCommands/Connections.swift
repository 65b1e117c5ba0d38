import FerryEndpoints
import FerryKV
import FerryServer

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
    do {
        let result = try await body(client)
        await client.close()
        return result
    } catch {
        await client.close()
        throw error
    }
}

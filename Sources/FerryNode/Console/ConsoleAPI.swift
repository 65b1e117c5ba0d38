import FerryMigration
import Foundation
import HTTPTypes
import Hummingbird
import NIOCore

/// The request context of the control API: Hummingbird's, plus the peer's address, which decides
/// whether a read needs the token.
public struct ConsoleContext: RequestContext, RemoteAddressRequestContext {
    public var coreContext: CoreRequestContextStorage
    public let remoteAddress: SocketAddress?

    public init(source: ApplicationRequestContextSource) {
        self.coreContext = .init(source: source)
        self.remoteAddress = source.channel.remoteAddress
    }
}

/// The routes of the HTTP control API (`/api/v1/...`), the dashboard (`/`) and `/metrics`.
///
/// Reads are open to loopback peers; everything else, and every action, needs
/// `Authorization: Bearer TOKEN`. Answers are JSON with sorted keys; an error is
/// `{"error": "..."}` with its status (400 bad body, 401 no token, 404, 409, 503).
public enum ConsoleAPI {
    public static let version = "v1"

    public static func router(
        reader: ClusterReader,
        token: String,
        kv: (@Sendable () throws -> KVView)?
    ) -> Router<
        ConsoleContext
    > {
        let router = Router(context: ConsoleContext.self)
        router.add(middleware: TokenMiddleware(token: token))
        router.get("/") { _, _ in
            Response(
                status: .ok,
                headers: [.contentType: "text/html; charset=utf-8", .cacheControl: "no-cache"],
                body: .init(byteBuffer: ByteBuffer(string: DashboardPage.html))
            )
        }
        router.get("/favicon.ico") { _, _ in Response(status: .noContent) }
        router.get("/metrics") { _, _ in
            Response(
                status: .ok,
                headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                body: .init(byteBuffer: ByteBuffer(bytes: NodeMetrics.exposition()))
            )
        }
        let api = router.group("api/\(Self.version)")
        api.get("cluster") { _, _ in try await answer { try await reader.cluster() } }
        api.get("processes") { _, _ in
            try await answer {
                let reading = try await reader.processes()
                guard reading.errors.isEmpty || !reading.processes.isEmpty else {
                    throw ConsoleError.unavailable(reading.errors.joined(separator: "; "))
                }
                return reading.processes
            }
        }
        api.get("objects") { _, _ in try await answer { try await reader.objects() } }
        api.get("switch") { _, _ in try await answer { try await reader.switchView() } }
        api.get("moves") { _, _ in try await answer { await reader.recentMoves() } }
        api.get("kv") { _, _ in
            try await answer {
                guard let kv else {
                    throw ConsoleError.notFound(
                        "no kv service runs in this process; ask the dashboard of 'ferry up', which hosts it"
                    )
                }
                return try kv()
            }
        }
        api.get("events") { _, _ in Self.events(reader) }
        for action in ["drain", "ready"] {
            api.post("switch/backends/:address/\(action)") { _, context in
                try await answer {
                    let address = try Self.parameter("address", context)
                    return ["result": try await reader.setBackend(address, draining: action == "drain")]
                }
            }
        }
        api.post("processes/:name/kill") { _, context in
            try await answer {
                let name = try Self.parameter("name", context)
                try await reader.kill(name)
                return ["result": "killed \(name)"]
            }
        }
        api.post("processes/:name/migrate") { request, context in
            try await answer {
                let name = try Self.parameter("name", context)
                let body = try await request.body.collect(upTo: 64 * 1024)
                let move: MigrateBody
                do {
                    move = try JSONDecoder().decode(MigrateBody.self, from: Data(buffer: body))
                } catch {
                    throw ConsoleError.badRequest(
                        "the body must be JSON like {\"to\": \"NODE\", \"mode\": \"strong\"}: \(error)"
                    )
                }
                let modeName = move.mode ?? MoveMode.strong.rawValue
                guard let mode = MoveMode(rawValue: modeName) else {
                    let modes = MoveMode.allCases.map(\.rawValue).joined(separator: ", ")
                    throw ConsoleError.badRequest("unknown mode '\(modeName)'; the modes are: \(modes)")
                }
                return try await reader.migrate(name, to: move.to, mode: mode)
            }
        }
        return router
    }

    /// A path parameter, percent-decoded (a browser sends `127.0.0.1%3A8080`).
    static func parameter(_ name: String, _ context: ConsoleContext) throws -> String {
        let raw = try context.parameters.require(name)
        return raw.removingPercentEncoding ?? raw
    }

    struct MigrateBody: Decodable {
        var to: String
        var mode: String?
    }

    /// Server-sent events: the whole snapshot, every second, until the page goes away.
    static func events(_ reader: ClusterReader) -> Response {
        Response(
            status: .ok,
            headers: [.contentType: "text/event-stream", .cacheControl: "no-cache"],
            body: .init { writer in
                while !Task.isCancelled {
                    let snapshot = await reader.snapshot()
                    var buffer = ByteBuffer(string: "data: ")
                    buffer.writeBytes(try encode(snapshot))
                    buffer.writeString("\n\n")
                    try await writer.write(buffer)
                    try await Task.sleep(for: .seconds(1))
                }
                try await writer.finish(nil)
            }
        )
    }

    static func encode(_ value: some Encodable) throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return try encoder.encode(value)
    }

    /// Runs `body` and answers its value as JSON, or its error with its status.
    static func answer(_ body: () async throws -> some Encodable) async throws -> Response {
        do {
            return json(.ok, try encode(try await body()))
        } catch let error as ConsoleError {
            return json(.init(code: error.status), try encode(["error": error.message]))
        } catch let error as HTTPError {
            return json(error.status, try encode(["error": error.body ?? "\(error.status)"]))
        }
    }

    static func json(_ status: HTTPResponse.Status, _ data: Data) -> Response {
        var buffer = ByteBuffer(bytes: data)
        buffer.writeString("\n")
        return Response(
            status: status,
            headers: [.contentType: "application/json", .cacheControl: "no-cache"],
            body: .init(byteBuffer: buffer)
        )
    }
}

/// Lets loopback peers read and asks the token of everything else.
struct TokenMiddleware: RouterMiddleware {
    typealias Context = ConsoleContext
    let token: String

    func handle(
        _ request: Request,
        context: ConsoleContext,
        next: (Request, ConsoleContext) async throws -> Response
    ) async throws -> Response {
        let isRead = request.method == .get || request.method == .head
        if isRead, Self.isLoopback(context.remoteAddress) { return try await next(request, context) }
        guard let header = request.headers[.authorization], header.hasPrefix("Bearer "),
            ConsoleToken.matches(header.dropFirst("Bearer ".count), self.token)
        else {
            let reason =
                isRead
                ? "reads from other hosts need the control token: send Authorization: Bearer TOKEN"
                : "actions need the control token: send Authorization: Bearer TOKEN (ferry up prints where the token is)"
            var response = ConsoleAPI.json(.unauthorized, try ConsoleAPI.encode(["error": reason]))
            response.headers[.wwwAuthenticate] = "Bearer"
            return response
        }
        return try await next(request, context)
    }

    static func isLoopback(_ address: SocketAddress?) -> Bool {
        guard let ip = address?.ipAddress else { return false }
        return ip.hasPrefix("127.") || ip == "::1" || ip.hasPrefix("::ffff:127.")
    }
}

import FerryPosix
import Foundation
import NIOCore
import NIOPosix

/// One request of a page fetch, as the waterfall shows it.
public struct FetchRecord: Codable, Sendable {
    public var url: String
    public var status: Int
    public var bytes: Int
    /// The connection (1…N) it went over.
    public var connection: Int
    /// From the start of the page fetch to the request's first byte written, and to its answer's
    /// last byte read.
    public var startMilliseconds: Double
    public var endMilliseconds: Double
    public var error: String?

    enum CodingKeys: String, CodingKey {
        case url, status, bytes, connection, error
        case startMilliseconds = "start_ms"
        case endMilliseconds = "end_ms"
    }
}

/// A whole page fetch.
public struct FetchReport: Codable, Sendable {
    public var records: [FetchRecord]
    public var connections: Int
    public var bytes: Int
    public var milliseconds: Double

    enum CodingKeys: String, CodingKey {
        case records, connections, bytes
        case milliseconds = "ms"
    }
}

/// The seed's multithreaded client: it fetches a page, finds the resources it names (and those
/// its stylesheets name), and fetches them over `parallel` keep-alive connections at once, as a
/// browser does with its six per host, so that the network's latency is paid once per round of
/// `parallel` requests instead of once per request.
public struct PageFetcher: Sendable {
    public var parallel: Int
    /// How long one request may take.
    public var timeout: Duration
    private let group: any EventLoopGroup

    public init(
        parallel: Int = 6,
        timeout: Duration = .seconds(30),
        group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton
    ) {
        self.parallel = parallel
        self.timeout = timeout
        self.group = group
    }

    public enum Failure: Error, CustomStringConvertible {
        case notHTTP(String)
        case page(String, status: Int)
        case unreachable(String, reason: String)

        public var description: String {
            switch self {
            case .notHTTP(let url): "cannot fetch \(url): only http:// addresses are fetched"
            case .page(let url, let status): "the page \(url) answered \(status)"
            case .unreachable(let origin, let reason): "cannot connect to \(origin): \(reason)"
            }
        }
    }

    /// Fetches `page` and everything it names; `received` sees each answer (to save it).
    public func fetch(
        _ page: URL,
        received: @escaping @Sendable (URL, FetchedResponse) -> Void = { _, _ in }
    ) async throws -> FetchReport {
        guard page.scheme == "http", page.host != nil else { throw Failure.notHTTP(page.absoluteString) }
        let clock = ContinuousClock()
        let started = clock.now
        let since: @Sendable () -> Double = { (clock.now - started).inSeconds * 1000 }
        let queue = FetchQueue()
        let records = RecordList()

        // The page first, on the first connection. The others open meanwhile, as a browser
        // preconnects: their handshakes overlap the page's round trips instead of following them.
        let group = self.group
        let preconnected = (1..<max(1, self.parallel)).map { _ in
            Task { try? await Connection.open(page.origin, group: group) }
        }
        var first: Connection?
        do {
            first = try await Connection.open(page.origin, group: self.group)
        } catch {
            for connection in preconnected { await connection.value?.close() }
            throw error
        }
        let pageAnswer: FetchedResponse?
        do {
            pageAnswer = try await self.get(page, on: &first, number: 1, since: since, records: records, throwing: true)
        } catch {
            for connection in preconnected { await connection.value?.close() }
            throw error
        }
        guard let pageAnswer, pageAnswer.status == 200 else {
            await first?.close()
            for connection in preconnected { await connection.value?.close() }
            throw Failure.page(page.absoluteString, status: pageAnswer?.status ?? 0)
        }
        received(page, pageAnswer)
        await queue.add(Self.resources(of: pageAnswer, at: page))
        let firstConnection = first
        await withTaskGroup(of: Void.self) { workers in
            for number in 1...max(1, self.parallel) {
                workers.addTask {
                    var connection = number == 1 ? firstConnection : await preconnected[number - 2].value
                    while let url = await queue.next(preferring: connection?.origin) {
                        if connection?.origin != url.origin {
                            await connection?.close()
                            connection = try? await Connection.open(url.origin, group: self.group)
                        }
                        let answer = try? await self.get(
                            url,
                            on: &connection,
                            number: number,
                            since: since,
                            records: records
                        )
                        if let answer {
                            received(url, answer)
                            await queue.add(Self.resources(of: answer, at: url))
                        }
                        await queue.finished()
                    }
                    await connection?.close()
                }
            }
        }
        let all = await records.all.sorted { $0.startMilliseconds < $1.startMilliseconds }
        return FetchReport(
            records: all,
            connections: max(1, self.parallel),
            bytes: all.reduce(0) { $0 + $1.bytes },
            milliseconds: since()
        )
    }

    /// One GET on `connection` (opened again once if the server had closed it); the answer, or
    /// nil with the failure recorded.
    private func get(
        _ url: URL,
        on connection: inout Connection?,
        number: Int,
        since: @Sendable () -> Double,
        records: RecordList,
        throwing: Bool = false
    ) async throws -> FetchedResponse? {
        let start = since()
        var record = FetchRecord(
            url: url.absoluteString,
            status: 0,
            bytes: 0,
            connection: number,
            startMilliseconds: start,
            endMilliseconds: start
        )
        do {
            if connection == nil { connection = try await Connection.open(url.origin, group: self.group) }
            var answer: FetchedResponse
            do {
                answer = try await connection!.get(url, timeout: self.timeout)
            } catch Connection.Failure.closedBeforeAnswer {
                // A keep-alive (or preconnected) connection the server closed while idle: once
                // more, on a new one (a GET may be repeated).
                await connection?.close()
                connection = try await Connection.open(url.origin, group: self.group)
                answer = try await connection!.get(url, timeout: self.timeout)
            }
            if !answer.keepAlive {
                await connection?.close()
                connection = nil
            }
            record.status = answer.status
            record.bytes = answer.body.count
            record.endMilliseconds = since()
            await records.append(record)
            return answer
        } catch {
            await connection?.close()
            connection = nil
            record.error = "\(error)"
            record.endMilliseconds = since()
            await records.append(record)
            if throwing { throw error }
            return nil
        }
    }

    /// What an answer names, resolved against its address: HTML's resources and CSS's.
    static func resources(of answer: FetchedResponse, at url: URL) -> [URL] {
        guard answer.status == 200 else { return [] }
        let text = String(decoding: answer.body, as: UTF8.self)
        let references: [String]
        if answer.contentType == "text/html" || (answer.contentType.isEmpty && url.pathExtension == "html") {
            references = PageResources.inHTML(text)
        } else if answer.contentType == "text/css" || url.pathExtension == "css" {
            references = PageResources.inCSS(text)
        } else {
            return []
        }
        return references.compactMap { reference in
            guard let resolved = URL(string: reference, relativeTo: url)?.absoluteURL, resolved.scheme == "http" else {
                return nil
            }
            // The fragment is the page's business, not the server's.
            var components = URLComponents(url: resolved, resolvingAgainstBaseURL: false)
            components?.fragment = nil
            return components?.url
        }
    }
}

/// The waterfall's rows, from all connections.
actor RecordList {
    private(set) var all: [FetchRecord] = []
    func append(_ record: FetchRecord) { self.all.append(record) }
}

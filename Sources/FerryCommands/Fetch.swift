import ArgumentParser
import FerryClient
import Foundation

/// `ferry fetch`: the seed's multithreaded client, as a browser fetches a page.
struct FetchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "fetch",
        abstract: "Fetch a page and the resources it names over parallel keep-alive connections.",
        discussion: """
            Fetches the HTML page at URL, finds its images, scripts and stylesheets (and what the \
            stylesheets name), and fetches them over --parallel connections at once, as a browser \
            does with six per host. Prints a waterfall: each request's connection, start and end.
            """
    )

    @Argument(help: "The page, http://HOST[:PORT]/PATH.")
    var url: String

    @Option(help: "Connections at once (a browser opens 6 per host).")
    var parallel = 6

    @Option(help: "Save every answer under this directory, by its path.")
    var out: String?

    @Option(help: "Seconds one request may take.")
    var timeout = 30

    @Flag(help: "One JSON object per request, then one with the totals.")
    var json = false

    func validate() throws {
        guard (1...256).contains(self.parallel) else {
            throw ValidationError("--parallel takes 1 to 256, got \(self.parallel)")
        }
        guard self.timeout > 0 else { throw ValidationError("--timeout must be positive, got \(self.timeout)") }
        guard let url = URL(string: self.url), url.scheme == "http", url.host != nil else {
            throw ValidationError("'\(self.url)' is not an http:// address (https is not fetched)")
        }
    }

    func run() async throws {
        let page = URL(string: self.url)!
        let out = self.out
        let report: FetchReport
        do {
            report = try await PageFetcher(parallel: self.parallel, timeout: .seconds(self.timeout)).fetch(page) {
                url,
                answer in
                guard let out, (200..<300).contains(answer.status) else { return }
                Self.save(answer.body, of: url, under: out)
            }
        } catch let error as PageFetcher.Failure {
            throw CommandFailure("\(error)")
        }
        if self.json {
            for record in report.records { printLine(try jsonString(record)) }
            printLine(
                try jsonString([
                    "resources": Double(report.records.count), "bytes": Double(report.bytes),
                    "ms": (report.milliseconds * 10).rounded() / 10, "connections": Double(report.connections),
                    "failed": Double(report.records.filter { $0.error != nil || $0.status >= 400 }.count),
                ])
            )
            return
        }
        self.printWaterfall(report)
    }

    private func printWaterfall(_ report: FetchReport) {
        let width = 40
        let total = max(report.milliseconds, 0.001)
        let rows = report.records.map { record -> [String] in
            let from = Int((record.startMilliseconds / total * Double(width)).rounded(.down))
            let to = max(from + 1, Int((record.endMilliseconds / total * Double(width)).rounded(.up)))
            let bar = String(repeating: " ", count: from) + String(repeating: "=", count: min(width, to) - from)
            let path = URL(string: record.url).map { $0.path + ($0.query.map { "?" + $0 } ?? "") } ?? record.url
            return [
                String(record.connection), record.error == nil ? String(record.status) : "error",
                String(record.bytes), String(format: "%.1f", record.startMilliseconds),
                String(format: "%.1f", record.endMilliseconds),
                "|" + bar.padding(toLength: width, withPad: " ", startingAt: 0) + "|",
                path + (record.error.map { "  (\($0))" } ?? ""),
            ]
        }
        printTable(["CONN", "STATUS", "BYTES", "START MS", "END MS", "WATERFALL", "URL"], rows)
        let failed = report.records.filter { $0.error != nil || $0.status >= 400 }.count
        printLine(
            "fetched \(report.records.count) resources (\(report.bytes) bytes) over \(report.connections) connection\(report.connections == 1 ? "" : "s") in \(String(format: "%.1f", report.milliseconds)) ms"
                + (failed > 0 ? "; \(failed) failed" : "")
        )
    }

    /// Writes an answer under `directory` at its URL's path (`index.html` for a directory).
    private static func save(_ body: [UInt8], of url: URL, under directory: String) {
        var path = url.path.isEmpty || url.path.hasSuffix("/") ? url.path + "index.html" : url.path
        path = path.split(separator: "/").filter { $0 != ".." && $0 != "." }.joined(separator: "/")
        let file = URL(fileURLWithPath: directory).appendingPathComponent(path)
        try? FileManager.default.createDirectory(
            at: file.deletingLastPathComponent(),
            withIntermediateDirectories: true
        )
        FileManager.default.createFile(atPath: file.path, contents: Data(body))
    }
}

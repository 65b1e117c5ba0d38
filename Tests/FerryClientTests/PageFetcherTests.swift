import FerryClient
import FerryServer
import FerryTestSupport
import Foundation
import Logging
import Synchronization
import Testing

/// The fetch client against Ferry's own file server on loopback.
@Suite struct PageFetcherTests {
    @Test func aPageAndEverythingItAndItsStylesheetsNameAreFetchedOnceOverTheConnectionsAsked() async throws {
        let site = try TemporaryDirectory()
        let root = URL(fileURLWithPath: site.path)
        for folder in ["img", "css", "js"] {
            try FileManager.default.createDirectory(
                at: root.appendingPathComponent(folder),
                withIntermediateDirectories: true
            )
        }
        var tags = ["<link rel=stylesheet href=css/site.css>", "<img src=missing.png>"]
        for index in 0..<12 {
            try Data(repeating: UInt8(index), count: 1000 * (index + 1)).write(
                to: root.appendingPathComponent("img/\(index).png")
            )
            tags.append("<img src=\"img/\(index).png\">")
        }
        tags.append("<script src=/js/app.js></script><img src=img/0.png>")
        try Data("var a = 1;".utf8).write(to: root.appendingPathComponent("js/app.js"))
        try Data(".x { background: url(../img/bg.png) } @import 'more.css';".utf8).write(
            to: root.appendingPathComponent("css/site.css")
        )
        try Data(".y { background: url(/img/bg.png) }".utf8).write(to: root.appendingPathComponent("css/more.css"))
        try Data(repeating: 7, count: 5000).write(to: root.appendingPathComponent("img/bg.png"))
        try Data("<html><body>\(tags.joined(separator: "\n"))</body></html>".utf8).write(
            to: root.appendingPathComponent("index.html")
        )
        var logger = Logger(label: "test")
        logger.logLevel = .critical
        let server = try await FileServer.bind(.init(root: site.path, model: .eventDriven), logger: logger)
        try await withRunning([server], logger: logger) {
            let saved = Mutex<[String: Int]>([:])
            let report = try await PageFetcher(parallel: 4).fetch(
                URL(string: "http://127.0.0.1:\(server.port)/index.html")!
            ) { url, answer in
                saved.withLock { $0[url.path] = answer.body.count }
            }
            let paths = report.records.map { URL(string: $0.url)!.path }
            // The page, 12 images, a missing one, the script, two stylesheets and their one image,
            // named three times and fetched once.
            #expect(report.records.count == 18)
            #expect(Set(paths).count == paths.count, "no resource fetched twice: \(paths)")
            #expect(report.records.first { $0.url.hasSuffix("missing.png") }?.status == 404)
            #expect(report.records.filter { $0.status == 200 }.count == 17)
            #expect(saved.withLock { $0["/img/11.png"] } == 12_000)
            #expect(saved.withLock { $0["/img/bg.png"] } == 5000)
            #expect(Set(report.records.map(\.connection)).isSubset(of: [1, 2, 3, 4]))
            #expect(report.records.first?.url.hasSuffix("/index.html") == true)
        }
    }

    @Test func aServerThatIsNotThereIsSaidInOneLine() async throws {
        do {
            _ = try await PageFetcher().fetch(URL(string: "http://127.0.0.1:9/")!)
            Issue.record("a fetch from a port nothing listens on succeeded")
        } catch {
            #expect("\(error)" == "cannot connect to 127.0.0.1:9: connection refused")
        }
    }
}

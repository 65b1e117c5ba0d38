import FerryNode
import FerryPosix
import FerryTestSupport
import Foundation
import Testing

#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// The thin client: `ferry up`'s control API, its token, `/metrics`, and the dashboard driven in a
/// real browser. `ferry up` runs as a process, as a user starts it.
@Suite(.serialized, .onThreadsOfTheirOwn) struct DashboardTests {
    /// A `ferry up` with one node, every port picked free, and what it printed.
    struct Up {
        let process: FerryProcess
        let temporary: TemporaryDirectory
        let summary: [String]
        let dashboard: String
        let token: String
        let switchControl: String

        init() throws {
            self.temporary = try TemporaryDirectory()
            self.process = try FerryProcess([
                "up", "--port", "0", "--control-port", "0", "--endpoints-port", "0", "--kv-port", "0",
                "--objects-port", "0", "--redirector-port", "0", "--dashboard-port", "0", "--dns-port", "0",
                "--nodes", "1", "--data-dir", self.temporary.path,
            ])
            var summary: [String] = []
            while let line = self.process.nextLine(), line != "Ctrl-C stops the node." { summary.append(line) }
            self.summary = summary
            let dashboard = try #require(summary.first { $0.hasPrefix("dashboard http://127.0.0.1:") })
            self.dashboard = String(dashboard.dropFirst("dashboard ".count).dropLast())
            let tokenFile = try #require(
                summary.first { $0.hasPrefix("token ") }?.split(separator: " ").dropFirst().first
            )
            self.token = try String(contentsOfFile: String(tokenFile), encoding: .utf8)
            let switchLine = try #require(summary.first { $0.hasPrefix("switch ") })
            self.switchControl = String(try #require(switchLine.split(separator: " ").last).dropLast())
        }

        func stop() {
            #expect(self.process.stop(SIGINT) == 0, "Ctrl-C stops ferry up and its dashboard cleanly")
        }
    }

    private func request(
        _ method: String,
        _ url: String,
        token: String? = nil,
        body: String? = nil
    ) async throws -> (Int, String) {
        var request = URLRequest(url: URL(string: url)!)
        request.httpMethod = method
        if let token { request.setValue("Bearer \(token)", forHTTPHeaderField: "Authorization") }
        if let body { request.httpBody = Data(body.utf8) }
        let (data, response) = try await URLSession.shared.data(for: request)
        return ((response as! HTTPURLResponse).statusCode, String(decoding: data, as: UTF8.self))
    }

    private func switchStats(_ control: String) throws -> String {
        let stats = try FerryProcess(["switch", "stats", "--control", control])
        var lines: [String] = []
        while let line = stats.nextLine() { lines.append(line) }
        return lines.joined(separator: "\n")
    }

    @Test func theControlAPIReadsTheClusterAndItsActionsNeedTheToken() async throws {
        let up = try Up()
        defer { up.stop() }
        let api = "\(up.dashboard)/api/v1"

        // The kv service registers at the daemon in the background: read until it is listed.
        var cluster: ClusterView
        let clock = ContinuousClock()
        let deadline = clock.now + .seconds(15)
        repeat {
            let (status, body) = try await self.request("GET", "\(api)/cluster")
            #expect(status == 200)
            cluster = try JSONDecoder().decode(ClusterView.self, from: Data(body.utf8))
            if cluster.services.contains(where: { $0.name == "kv" }) { break }
            try await Task.sleep(for: .milliseconds(50))
        } while clock.now < deadline
        let node = try #require(cluster.nodes.first { $0.name == "node-1" })
        #expect(node.healthy && node.cpus > 0)
        #expect(cluster.services.contains { $0.name == "kv" })

        // Every node serves the same API: node-1's own answers with the same cluster.
        let nodeAPI = try #require(node.http)
        let (nodeStatus, nodeBody) = try await self.request("GET", "http://\(nodeAPI)/api/v1/cluster")
        #expect(nodeStatus == 200)
        #expect(try JSONDecoder().decode(ClusterView.self, from: Data(nodeBody.utf8)).nodes.map(\.name) == ["node-1"])

        let frontDoor = try #require(up.summary.first?.dropFirst("listening on ".count))
        #expect(try await self.request("GET", "http://\(frontDoor)/hello.txt").0 == 200)
        let (_, switchBody) = try await self.request("GET", "\(api)/switch")
        let front = try JSONDecoder().decode(SwitchView.self, from: Data(switchBody.utf8))
        let files = try #require(front.backends.first { $0.group == "default" })
        #expect(files.total == 1 && files.latencyMilliseconds > 0, "the answer's latency: \(files)")
        let app = try #require(front.backends.first { $0.group == "app" })
        #expect(front.backends.filter { $0.group == "app" }.count == 3 && app.state == "up")

        // Actions need the token: none, or a wrong one, is refused with 401 and nothing changes.
        let drain = "\(api)/switch/backends/\(app.address)/drain"
        #expect(try await self.request("POST", drain).0 == 401)
        #expect(try await self.request("POST", drain, token: String(repeating: "0", count: 64)).0 == 401)
        #expect(!(try self.switchStats(up.switchControl)).contains("draining"))

        // With it, the backend drains, as `ferry switch stats` says; ready takes it back.
        let (drained, answer) = try await self.request("POST", drain, token: up.token)
        #expect(drained == 200 && answer.contains("ok draining \(app.address)"))
        let stats = try self.switchStats(up.switchControl)
        #expect(
            stats.split(separator: "\n").contains { $0.contains(app.address) && $0.contains("draining") },
            "\(stats)"
        )
        #expect(try await self.request("POST", "\(api)/switch/backends/\(app.address)/ready", token: up.token).0 == 200)
        #expect(!(try self.switchStats(up.switchControl)).contains("draining"))

        // Bad requests say why.
        let (badBody, badReason) = try await self.request(
            "POST",
            "\(api)/processes/x/migrate",
            token: up.token,
            body: "{not json"
        )
        #expect(badBody == 400 && badReason.contains("must be JSON"))
        let (badMode, modeReason) = try await self.request(
            "POST",
            "\(api)/processes/x/migrate",
            token: up.token,
            body: #"{"to": "node-1", "mode": "teleport"}"#
        )
        #expect(badMode == 400 && modeReason.contains("unknown mode 'teleport'"))
        #expect(try await self.request("POST", "\(api)/processes/nobody/kill", token: up.token).0 == 404)
        #expect(try await self.request("POST", "\(api)/switch/backends/10.9.9.9:1/drain", token: up.token).0 == 404)

        let (kvStatus, kv) = try await self.request("GET", "\(api)/kv")
        #expect(kvStatus == 200 && kv.contains("\"keys\":"))
        let (pageStatus, page) = try await self.request("GET", "\(up.dashboard)/")
        #expect(pageStatus == 200 && page.contains("new EventSource(\"/api/v1/events\")"))
    }

    @Test func metricsAreInPrometheusTextFormat() async throws {
        let up = try Up()
        defer { up.stop() }
        let front = try #require(up.summary.first?.dropFirst("listening on ".count))
        _ = try await self.request("GET", "http://\(front)/")
        // A kv write and an object call, each at its service's own address, so their latency
        // histograms have a sample.
        let kv = try #require(up.summary.first { $0.hasPrefix("kv ") }?.split(separator: " ").dropFirst().first)
        let objects = try #require(
            up.summary.first { $0.hasPrefix("objects ") }?.split(separator: " ").dropFirst().first
        )
        for command in [
            ["kv", "--addr", String(kv), "put", "greeting", "hello"],
            ["call", "--node", String(objects), "counter", "increment", "[1]"],
        ] {
            let client = try FerryProcess(command, environment: ["FERRY_DATA_DIR": up.temporary.path])
            while client.nextLine() != nil {}
            client.process.waitUntilExit()
            #expect(client.process.terminationStatus == 0, "ferry \(command.joined(separator: " "))")
        }
        let (status, metrics) = try await self.request("GET", "\(up.dashboard)/metrics")
        #expect(status == 200)
        #expect(metrics.contains("# TYPE ferry_http_requests_served_total counter"))
        #expect(metrics.contains("ferry_kv_request_duration_seconds_count{op=\"write\"} 1"))
        #expect(metrics.contains("ferry_object_call_duration_seconds_count 1"))
        // The GET went through the front switch to the file server: both timed it.
        #expect(metrics.contains("ferry_switch_request_duration_seconds_count 1"))
        #expect(metrics.contains("ferry_http_request_duration_seconds_count{model=\"event-driven\"} 1"))
        #expect(metrics.contains("# HELP ferry_object_call_duration_seconds "))
        guard
            let promtool = ["/usr/bin/promtool", "/usr/local/bin/promtool"].first(
                where: FileManager.default.isExecutableFile
            )
        else {
            print("skipped promtool: it is not installed (Debian's prometheus package has it)")
            return
        }
        let file = up.temporary.path + "/metrics.txt"
        try metrics.write(toFile: file, atomically: true, encoding: .utf8)
        let check = try ChildProcess.run(["/bin/sh", "-c", "\(promtool) check metrics < \(file)"], mergingErrors: true)
        #expect(check.status == 0, "promtool check metrics: \(check.output)")
    }

    /// Headless Chromium through Selenium, with Debian's browser and driver.
    static let browser: String? = {
        let python = ProcessInfo.processInfo.environment["VIRTUAL_ENV"].map { $0 + "/bin/python" } ?? "/usr/bin/python3"
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/chromium"),
            FileManager.default.isExecutableFile(atPath: "/usr/bin/chromedriver"),
            (try? ChildProcess.run([python, "-c", "import selenium"]))?.status == 0
        else { return nil }
        return python
    }()

    @Test(.enabled(if: Self.browser != nil, "needs chromium, chromium-driver (Debian) and selenium (PyPI)"))
    func theDashboardInABrowserShowsTheAppNodesAndDrainsOne() async throws {
        let up = try Up()
        defer { up.stop() }
        let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Browser/dashboard.py").path
        let screenshot = up.temporary.path + "/dashboard.png"
        let browser = try ChildProcess.run(
            [try #require(Self.browser), script, up.dashboard + "/", up.token, screenshot],
            mergingErrors: true
        )
        #expect(browser.status == 0, "the browser drove the dashboard: \(browser.output)")
        let drained = try #require(browser.output.split(separator: "\n").last.map(String.init))
        let stats = try self.switchStats(up.switchControl)
        #expect(stats.split(separator: "\n").contains { $0.contains(drained) && $0.contains("draining") }, "\(stats)")
        #expect(FileManager.default.fileExists(atPath: screenshot))
        if let keep = ProcessInfo.processInfo.environment["FERRY_DASHBOARD_SCREENSHOT"] {
            try? FileManager.default.removeItem(atPath: keep)
            try FileManager.default.copyItem(atPath: screenshot, toPath: keep)
        }
    }
}

import FerryEndpoints
import FerryHTTP
import FerryServer
import FerrySwitch
import FerryTestSupport
import Foundation
import Testing

@Suite struct HTTPSwitchTests {
    func makeSwitch(
        _ backends: [BackendSpec],
        policy: BalancePolicy = .roundRobin,
        options: HTTPSwitch.Options = .init()
    ) throws -> HTTPSwitch {
        try HTTPSwitch(
            listen: try SwitchListener(ServiceEndpoint(host: "127.0.0.1", port: 0)),
            backends: backends,
            policy: policy,
            healthCheckInterval: nil,
            options: options,
            threads: 1
        )
    }

    func local(_ port: Int, group: String? = nil) -> BackendSpec {
        BackendSpec(endpoint: ServiceEndpoint(host: "127.0.0.1", port: port), group: group)
    }

    @Test func eachRequestOfAKeepAliveConnectionIsBalanced() async throws {
        try await FileBackends.with(names: ["a", "b"]) { backends in
            let http = try self.makeSwitch(backends.ports.map { self.local($0) })
            defer { http.stop() }
            let client = try TestClient(port: http.address.port)
            defer { client.close() }
            var names: [String] = []
            for _ in 0..<4 { names.append(client.fetch("/name.txt")?.text ?? "no answer") }
            #expect(names == ["a", "b", "a", "b"])
            let head = client.exchange("HEAD /name.txt HTTP/1.1\r\nHost: x\r\n\r\n", headRequest: true)
            #expect(head?.status == 200 && head?.header("content-length") == "1")
            #expect(client.fetch("/missing")?.status == 404, "the connection still works after a HEAD")
        }
    }

    @Test func largeAnswersCrossWholeOneAfterAnother() async throws {
        try await FileBackends.with(names: ["a"]) { backends in
            // Letters only, so the text the test reads back is byte for byte what was served.
            var letters = [UInt8](repeating: 0, count: 3 << 20)
            for index in letters.indices { letters[index] = UInt8(97 + (index &* 7 &+ index >> 12) % 26) }
            let big = String(decoding: letters, as: UTF8.self)
            try Data(big.utf8).write(to: URL(fileURLWithPath: backends.directory + "/a/big.txt"))
            let http = try self.makeSwitch([self.local(backends.ports[0])])
            defer { http.stop() }
            let client = try TestClient(port: http.address.port)
            defer { client.close() }
            for round in 0..<3 {
                let answer = client.fetch("/big.txt")
                #expect(answer?.body.count == big.utf8.count, "round \(round)")
                #expect(answer?.text == big, "round \(round)")
                #expect(client.fetch("/name.txt")?.text == "a", "the next answer follows the big one cleanly")
            }
        }
    }

    @Test func routesPickTheGroupByHostPathAndHeader() async throws {
        try await FileBackends.with(names: ["web", "api", "canary", "img"]) { backends in
            let ports = backends.ports
            let http = try self.makeSwitch(
                [
                    self.local(ports[0]), self.local(ports[1], group: "api"), self.local(ports[2], group: "canary"),
                    self.local(ports[3], group: "img"),
                ],
                options: .init(routes: [
                    HTTPRoute("header=X-Canary:1 group=canary")!,
                    HTTPRoute("host=img.test group=img")!,
                    HTTPRoute("path=/page-api group=api")!,
                ])
            )
            defer { http.stop() }
            let client = try TestClient(port: http.address.port)
            defer { client.close() }
            #expect(client.fetch("/name.txt")?.text == "web", "no route matches: the default group")
            #expect(client.fetch("/page-api.html")?.status == 200, "path prefix")
            #expect(client.fetch("/name.txt", host: "IMG.test:8080")?.text == "img", "host, without port or case")
            #expect(client.fetch("/name.txt", headers: "X-Canary: 1\r\n")?.text == "canary", "header")
        }
        #expect(throws: SwitchError.self) {
            try self.makeSwitch([self.local(1)], options: .init(routes: [HTTPRoute("path=/x group=nobody")!]))
        }
        #expect(HTTPRoute("group=x") == nil, "a route needs a condition")
        #expect(HTTPRoute("path=nope group=x") == nil)
    }

    @Test func theBackendSeesTheClientAddressAndNoHopByHopFields() async throws {
        let backend = try await ScriptedBackend.echo()
        let http = try self.makeSwitch([self.local(backend.port)])
        defer { http.stop() }
        for _ in 0..<3 {
            let client = try TestClient(port: http.address.port)
            let answer = client.fetch(
                "/x",
                headers:
                    "X-Forwarded-For: 10.1.2.3\r\nConnection: keep-alive, X-Secret\r\nX-Secret: s\r\nKeep-Alive: timeout=5\r\n"
            )
            client.close()
            let seen = answer?.text ?? ""
            #expect(seen.contains("X-Forwarded-For: 10.1.2.3, 127.0.0.1\r\n"))
            #expect(!seen.contains("X-Secret") && !seen.contains("Keep-Alive") && !seen.contains("Connection"))
        }
        #expect(backend.connections.withLockedValue { $0 } == 1, "three clients' requests rode one pooled connection")
        try await backend.stop()
    }

    @Test func aStickyCookieKeepsAClientOnItsBackend() async throws {
        try await FileBackends.with(names: ["a", "b", "c"]) { backends in
            let http = try self.makeSwitch(
                backends.ports.map { self.local($0) },
                options: .init(stickyCookie: "ferry")
            )
            defer { http.stop() }
            let first = try TestClient(port: http.address.port)
            let answer = first.fetch("/name.txt")
            first.close()
            let cookie = try #require(answer?.header("set-cookie")?.split(separator: ";").first.map(String.init))
            for _ in 0..<4 {
                let client = try TestClient(port: http.address.port)
                let again = client.fetch("/name.txt", headers: "Cookie: other=1; \(cookie)\r\n")
                #expect(again?.text == answer?.text)
                #expect(again?.header("set-cookie") == nil, "no new cookie while the backend holds")
                client.close()
            }
        }
    }

    @Test func lardKeepsEachContentOnOneBackend() async throws {
        try await FileBackends.with(names: ["a", "b", "c"]) { backends in
            let http = try self.makeSwitch(backends.ports.map { self.local($0) }, policy: .locality)
            defer { http.stop() }
            let client = try TestClient(port: http.address.port)
            defer { client.close() }
            var servedBy: [String: Set<String>] = [:]
            for round in 0..<3 {
                for item in 0..<6 {
                    let answer = client.fetch("/c\(item).txt?round=\(round)")
                    servedBy["c\(item)", default: []].insert(answer?.text ?? "none")
                }
            }
            #expect(servedBy.values.allSatisfy { $0.count == 1 }, "each content stays where it went first: \(servedBy)")
            #expect(Set(servedBy.values.flatMap { $0 }).count == 3, "new content went to idle backends in turn")
        }
    }

    @Test func aRequestThatMayBeRepeatedSurvivesABackendThatDies() async throws {
        let dying = try await ScriptedBackend { _ in .hangUp }
        let healthy = try await ScriptedBackend { request in
            let line = request.components(separatedBy: "\r\n")[0]
            return .reply("HTTP/1.1 200 OK\r\nContent-Length: \(line.utf8.count)\r\n\r\n\(line)")
        }
        let http = try self.makeSwitch([self.local(dying.port), self.local(healthy.port)])
        defer { http.stop() }
        let client = try TestClient(port: http.address.port)
        #expect(client.fetch("/safe")?.text == "GET /safe HTTP/1.1", "retried on the other backend")
        client.close()
        // A POST is not repeated: the dying backend may have acted on it.
        let poster = try TestClient(port: http.address.port)
        _ = poster.fetch("/advance")  // the next pick is the dying backend again
        let answer = poster.exchange("POST /order HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi")
        #expect(answer?.status == 502)
        poster.close()
        try await dying.stop()
        try await healthy.stop()
    }

    /// A backend that dies mid-answer: a small answer was held back whole, so nothing of it went
    /// out and the GET goes to the other backend; a large one was streaming, so the client's
    /// connection closes (half an answer cannot be taken back).
    @Test func aSmallAnswerBrokenOffIsRetriedElsewhereAndALargeOneClosesTheConnection() async throws {
        let large = 200 * 1024
        let dying = try await ScriptedBackend { request in
            let length = request.hasPrefix("GET /large") ? large : 1000
            return .replyThenHangUp(
                "HTTP/1.1 200 OK\r\nContent-Length: \(length)\r\n\r\n" + String(repeating: "d", count: 600)
            )
        }
        let healthy = try await ScriptedBackend { request in
            let body = request.hasPrefix("GET /large") ? String(repeating: "h", count: large) : "whole"
            return .reply("HTTP/1.1 200 OK\r\nContent-Length: \(body.utf8.count)\r\n\r\n\(body)")
        }
        let http = try self.makeSwitch([self.local(dying.port), self.local(healthy.port)])
        defer { http.stop() }
        for _ in 0..<4 {
            let client = try TestClient(port: http.address.port)
            #expect(client.fetch("/small")?.text == "whole", "a broken-off small answer is retried")
            client.close()
        }
        var closed = 0
        for _ in 0..<4 {
            let client = try TestClient(port: http.address.port)
            if client.fetch("/large")?.body.count != large { closed += 1 }
            client.close()
        }
        #expect(closed > 0, "a large answer broken off mid-way is not retried")
        try await dying.stop()
        try await healthy.stop()
    }

    /// With `--hold-back 0` every answer streams as it comes: a small one broken off closes the
    /// client's connection as a large one does, rather than being retried.
    @Test func withNothingHeldBackASmallAnswerBrokenOffClosesTheConnection() async throws {
        let dying = try await ScriptedBackend { _ in
            .replyThenHangUp("HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n" + String(repeating: "d", count: 600))
        }
        let healthy = try await ScriptedBackend { _ in .reply("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nwhole") }
        let http = try self.makeSwitch(
            [self.local(dying.port), self.local(healthy.port)],
            options: .init(holdBack: 0)
        )
        defer { http.stop() }
        var cut = 0
        for _ in 0..<4 {
            let client = try TestClient(port: http.address.port)
            if client.fetch("/small")?.text != "whole" { cut += 1 }
            client.close()
        }
        #expect(cut > 0, "an answer that had begun is not retried")
        try await dying.stop()
        try await healthy.stop()
    }

    /// HTTP/1.0 needs no Host; passed on as HTTP/1.1, which does, it gets an empty one, as RFC
    /// 9112 asks, and is served as the backend and HAProxy would serve it.
    @Test func anHTTP10RequestWithoutHostIsPassedOnWithAnEmptyHost() async throws {
        let backend = try await ScriptedBackend.echo()
        let http = try self.makeSwitch([self.local(backend.port)])
        defer { http.stop() }
        let client = try TestClient(port: http.address.port)
        defer { client.close() }
        let answer = client.exchange("GET /old HTTP/1.0\r\n\r\n")
        #expect(answer?.status == 200)
        #expect(answer?.text.hasPrefix("GET /old HTTP/1.1\r\nHost: \r\n") == true, "\(answer?.text ?? "")")
        try await backend.stop()
    }

    @Test func badRequestsGet400AndCloseOnlyTheirConnection() async throws {
        let backend = try await ScriptedBackend.echo()
        let http = try self.makeSwitch([self.local(backend.port)])
        defer { http.stop() }
        let bystander = try TestClient(port: http.address.port)
        defer { bystander.close() }
        let attempts = [
            (
                "an oversized head",
                "GET / HTTP/1.1\r\nHost: x\r\nX-Big: \(String(repeating: "a", count: 20_000))\r\n\r\n"
            ),
            (
                "Content-Length with Transfer-Encoding",
                "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
            ),
            ("two Content-Lengths", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nhi"),
            (
                "a malformed chunk size",
                "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n"
            ),
            ("a chunk without its CRLF", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhiXX"),
            ("an unknown transfer coding", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n"),
            ("a bare LF", "GET / HTTP/1.1\nHost: x\r\n\r\n"),
            ("only bare LFs (no CRLF CRLF ever comes)", "GET / HTTP/1.1\nHost: x\n\n"),
        ]
        for (what, request) in attempts {
            let client = try TestClient(port: http.address.port)
            let answer = client.exchange(request)
            #expect(answer?.status == 400, "\(what)")
            #expect(answer?.header("connection") == "close", "\(what)")
            #expect(client.receive(1).isEmpty, "\(what): the connection is closed")
            client.close()
            #expect(bystander.fetch("/still")?.status == 200, "after \(what), others are served")
        }
        // A good chunked body passes through whole.
        let chunked = try TestClient(port: http.address.port)
        let echoed = chunked.exchange(
            "POST /up HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n0\r\nX-Trailer: t\r\n\r\n"
        )
        #expect(echoed?.text.hasSuffix("5;ext=1\r\nhello\r\n0\r\nX-Trailer: t\r\n\r\n") == true)
        chunked.close()
        try await backend.stop()
    }

    @Test func aBackendThatAnswersGarbageGives502() async throws {
        let garbage = try await ScriptedBackend { _ in .reply("SSH-2.0-OpenSSH_9.2\r\n\r\n") }
        let http = try self.makeSwitch([self.local(garbage.port)])
        defer { http.stop() }
        let client = try TestClient(port: http.address.port)
        #expect(client.fetch("/")?.status == 502)
        client.close()
        try await garbage.stop()
    }

    @Test func silentClientsAndSilentBackendsAreGivenUpOn() async throws {
        let silent = try await ScriptedBackend { _ in .silence }
        let http = try self.makeSwitch(
            [self.local(silent.port)],
            options: .init(
                client: ClientTimeouts(header: .milliseconds(300), idle: .milliseconds(300)),
                backendTimeout: .milliseconds(300)
            )
        )
        defer { http.stop() }
        let mute = try TestClient(port: http.address.port)
        #expect(mute.receive(1).isEmpty, "a client that says nothing is closed without an answer")
        mute.close()
        let slow = try TestClient(port: http.address.port)
        slow.send(Array("GET / HTTP/1.1\r\nHo".utf8))
        #expect((try? slow.readResponse())?.status == 408, "a head that stops halfway")
        slow.close()
        let waiting = try TestClient(port: http.address.port)
        #expect(waiting.fetch("/")?.status == 504, "a backend that never answers")
        waiting.close()
        try await silent.stop()
    }

    @Test func noBackendUpGives503() async throws {
        let gone = try await ScriptedBackend.echo()
        let port = gone.port
        try await gone.stop()
        let http = try self.makeSwitch([self.local(port)])
        defer { http.stop() }
        let client = try TestClient(port: http.address.port)
        let first = client.fetch("/")
        #expect(first?.status == 502, "its connect failed: the request found no other backend")
        client.close()
        let next = try TestClient(port: http.address.port)
        #expect(next.fetch("/")?.status == 503, "out of rotation now")
        next.close()
    }
}

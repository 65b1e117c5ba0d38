import FerryTestSupport
import Metrics
import MetricsTestKit
import Testing

@testable import FerryServer

#if canImport(Glibc)
import Glibc
#endif

/// What sets the models apart: the dispatcher's bounded queue, and the metrics each one exports.
@Suite(.serialized) struct ExecutionModelTests {
    let directory: TemporaryDirectory

    init() throws {
        self.directory = try TemporaryDirectory()
        self.directory.writeLarge("big.bin", megabytes: 64)
        self.directory.write("small.txt", "small")
    }

    /// Starts a transfer that the client does not read, so the worker serving it blocks on the
    /// full socket, and returns the connection holding the worker.
    private func occupyAWorker(port: Int) throws -> TestClient {
        let hog = try TestClient(port: port, receiveBuffer: 4096)
        try hog.get("/big.bin")
        _ = try hog.readHead()
        return hog
    }

    @Test func theDispatcherAnswers503AtOnceWhenItsQueueIsFull() async throws {
        let configuration = FileServer.Configuration(
            root: self.directory.path,
            model: .dispatcher,
            workers: 1,
            queueCapacity: 1
        )
        try await withFileServer(configuration) { server in
            let hog = try self.occupyAWorker(port: server.port)  // the only worker is now stuck on this client
            #expect(server.metrics.value("busy_workers") == 1)

            let queued = try TestClient(port: server.port)
            try queued.get("/small.txt")  // takes the only queue slot
            try await server.waitFor("queue_depth", toBe: 1)

            let refused = try TestClient(port: server.port)
            try refused.get("/small.txt")
            let response = try refused.readResponse()
            #expect(response.status == 503)
            #expect(response.header("retry-after") == "1")
            #expect(server.metrics.value("requests_rejected") == 1)

            // Free the worker: the queued request is then served, and the refused client may retry.
            _ = hog
            try hog.sendUrgent()
            #expect(try queued.readResponse().text == "small")
            try refused.get("/small.txt")
            #expect(try refused.readResponse().status == 200)
        }
    }

    @Test func theIterativeServerServesOneRequestAtATime() async throws {
        let configuration = FileServer.Configuration(root: self.directory.path, model: .iterative)
        try await withFileServer(configuration) { server in
            let hog = try self.occupyAWorker(port: server.port)
            // The one thread is busy with the hog, so a second client waits — until the hog is cancelled.
            let waiting = try TestClient(port: server.port)
            try waiting.get("/small.txt")
            #expect(server.metrics.value("busy_workers") == 1)
            #expect(server.metrics.value("requests_served") == 0)
            try hog.sendUrgent()
            #expect(try waiting.readResponse().text == "small")
        }
    }

    @Test(arguments: ExecutionModel.allCases)
    func exportsItsCountersThroughSwiftMetrics(model: ExecutionModel) async throws {
        let metrics = TestMetrics()
        let configuration = FileServer.Configuration(root: self.directory.path, model: model, workers: 2)
        try await withFileServer(configuration, metrics: metrics) { server in
            let connection = try TestClient(port: server.port)
            for _ in 0..<3 {
                try connection.get("/small.txt")
                _ = try connection.readResponse()
            }
        }
        let served = try metrics.expectCounter("ferry_http_requests_served_total", [("model", model.rawValue)])
        #expect(served.totalValue == 3)
        if model == .dispatcher {
            let depth = try metrics.expectGauge("ferry_http_queue_depth", [("model", model.rawValue)])
            #expect(depth.lastValue == 0)
        }
        if model != .eventDriven {
            let busy = try metrics.expectGauge("ferry_http_busy_workers", [("model", model.rawValue)])
            #expect(busy.values.contains(1), "a worker was busy while it served")
            #expect(busy.lastValue == 0)
        }
    }
}

extension ServerMetrics {
    func value(_ name: String) -> Int64? {
        self.snapshot.first { $0.name == name }?.value
    }
}

extension FileServer {
    /// Waits for a counter to reach a value: the signal a test waits on instead of a sleep.
    func waitFor(_ name: String, toBe value: Int64) async throws {
        let reached = await eventually { self.metrics.value(name) == value }
        #expect(reached, "\(name) did not reach \(value) within 10 s (it is \(self.metrics.value(name) ?? -1))")
    }
}

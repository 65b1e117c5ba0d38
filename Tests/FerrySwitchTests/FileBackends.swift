import FerryServer
import FerryTestSupport
import Foundation
import Logging

/// Ferry file servers as a switch's backends, each serving its own directory in which
/// `name.txt` and `c0.txt`...`c5.txt` hold its name and `page-NAME.html` is its own; stopped when the test's body ends.
struct FileBackends {
    let servers: [FileServer]
    let directory: String
    var ports: [Int] { self.servers.map(\.port) }
    /// The handoff socket of backend `index`.
    func handoffPath(_ index: Int) -> String { "\(self.directory)/handoff-\(index).sock" }

    static func with<T>(
        names: [String],
        handoff: Bool = false,
        model: ExecutionModel = .eventDriven,
        _ body: (FileBackends) async throws -> T
    ) async throws -> T {
        let temporary = try TemporaryDirectory()
        defer { withExtendedLifetime(temporary) {} }  // removed at the end of the test
        let directory = temporary.path
        var logger = Logger(label: "test.backend")
        logger.logLevel = .critical
        var servers: [FileServer] = []
        for (index, name) in names.enumerated() {
            let root = "\(directory)/\(name)"
            try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
            try Data(name.utf8).write(to: URL(fileURLWithPath: "\(root)/name.txt"))
            try Data(repeating: UInt8(ascii: "x"), count: 1000).write(
                to: URL(fileURLWithPath: "\(root)/page-\(name).html")
            )
            // Content every backend has, as a cluster's replicated site would.
            for item in 0..<6 { try Data(name.utf8).write(to: URL(fileURLWithPath: "\(root)/c\(item).txt")) }
            servers.append(
                try await FileServer.bind(
                    .init(
                        root: root,
                        model: model,
                        workers: 1,
                        handoffSocket: handoff ? "\(directory)/handoff-\(index).sock" : nil
                    ),
                    logger: logger
                )
            )
        }
        let backends = FileBackends(servers: servers, directory: directory)
        return try await withRunning(servers, logger: logger) { try await body(backends) }
    }
}

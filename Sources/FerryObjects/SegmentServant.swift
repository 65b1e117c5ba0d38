import FerryPosix
import FerryWire
import Foundation
import Logging
import NIOConcurrencyHelpers

/// How to start a process that hosts objects of one type: an executable that runs an object
/// server (`ferry objects segment ...`) and prints `listening on PORT` when ready.
public struct SegmentLauncher: Sendable {
    public var executable: String
    public var arguments: [String]

    public init(executable: String, arguments: [String]) {
        self.executable = executable
        self.arguments = arguments
    }
}

/// The process of a segment-isolated object died.
struct SegmentFailure: Error, CustomStringConvertible {
    var description: String
}

/// An object in a process of its own (the `segment` isolation policy): the adapter calls it
/// over FerryWire, on loopback. When the process dies, the call fails with `segmentFailed`, the
/// activation is dropped, and the next call starts a new process; nothing else in the node is
/// touched.
final class SegmentServant: ObjectServant, Sendable {
    let id: String
    private let process: ChildProcess
    private let client: WireClient
    private let sequence = NIOLockedValueBox<UInt64>(0)
    private let clientID = UInt64.random(in: 1...UInt64.max)

    var pid: Int32 { self.process.pid }

    private init(id: String, process: ChildProcess, client: WireClient) {
        self.id = id
        self.process = process
        self.client = client
    }

    /// Starts the process and hands it the object (with its state).
    static func launch(id: String, state: [UInt8]?, launcher: SegmentLauncher) async throws -> SegmentServant {
        let output = Pipe()
        let process: ChildProcess
        do {
            defer { try? output.fileHandleForWriting.close() }
            process = try ChildProcess(
                launcher.executable,
                launcher.arguments,
                environment: WireSecurity.childEnvironment,
                standardOutput: output.fileHandleForWriting.fileDescriptor
            )
        } catch {
            throw ErrorMessage(
                code: .segmentFailed,
                message: "cannot start the segment process \(launcher.executable) for '\(id)': \(error)"
            )
        }
        let port = try await Self.readPort(output.fileHandleForReading, process: process, id: id)
        do {
            let client = try await WireClient.connect(
                host: "127.0.0.1",
                port: port,
                maxPayloadLength: ObjectLimits.maxPayloadLength
            )
            let servant = SegmentServant(id: id, process: process, client: client)
            _ = try await client.call(ObjectAdopt(object: id, state: state, fromLease: 0)).decode(as: ObjectResult.self)
            return servant
        } catch {
            process.signal(SIGTERM)
            throw ErrorMessage(
                code: .segmentFailed,
                message: "the segment process for '\(id)' did not take it: \(error)"
            )
        }
    }

    /// How long a segment process may take to say where it listens.
    static let startTimeout = Duration.seconds(10)

    /// Reads the `listening on PORT` line off a thread of its own (the read blocks); a process
    /// that says nothing in time is stopped.
    private static func readPort(_ handle: FileHandle, process: ChildProcess, id: String) async throws -> Int {
        let watchdog = Task {
            try await Task.sleep(for: Self.startTimeout)
            if process.isRunning { process.signal(SIGTERM) }
        }
        defer { watchdog.cancel() }
        let line: String = await withCheckedContinuation { continuation in
            Thread.detachNewThread {
                var bytes: [UInt8] = []
                while !bytes.contains(UInt8(ascii: "\n")) {
                    let chunk = handle.availableData
                    if chunk.isEmpty { break }
                    bytes += chunk
                }
                continuation.resume(returning: String(decoding: bytes, as: UTF8.self))
            }
        }
        guard let word = line.split(separator: "\n").first?.split(separator: ":").last, let port = Int(word) else {
            process.signal(SIGTERM)
            throw ErrorMessage(
                code: .segmentFailed,
                message: "the segment process for '\(id)' did not start: it printed '\(line.prefix(200))'"
            )
        }
        return port
    }

    func invoke(_ method: String, arguments: ObjectValue) async throws -> ObjectValue {
        try await self.call(method, arguments)
    }

    func state() async throws -> [UInt8] {
        guard case .bytes(let state) = try await self.call(ObjectAdapter.stateMethod, .list([])) else {
            throw ErrorMessage(code: .malformed, message: "the segment process of '\(self.id)' sent no state")
        }
        return state
    }

    private func call(_ method: String, _ arguments: ObjectValue) async throws -> ObjectValue {
        let sequence = self.sequence.withLockedValue {
            $0 += 1
            return $0
        }
        let call = ObjectCall(
            object: self.id,
            method: method,
            callID: CallID(client: self.clientID, sequence: sequence),
            deadlineMilliseconds: 0,
            arguments: arguments
        )
        let frame: Frame
        do {
            // The caller's deadline bounds the call; this only ends a call nobody waits for.
            frame = try await self.client.call(call, timeout: .hours(1))
        } catch {
            throw SegmentFailure(description: await self.death(error))
        }
        guard case .value(let value, _) = try frame.decode(as: ObjectResult.self).outcome else {
            throw ErrorMessage(code: .malformed, message: "the segment process of '\(self.id)' forwarded a call")
        }
        return value
    }

    private func death(_ error: any Error) async -> String {
        // The connection ends as the process dies; give the kernel a moment to report the exit.
        for _ in 0..<100 where self.process.isRunning { try? await Task.sleep(for: .milliseconds(1)) }
        let how: String
        if self.process.isRunning {
            how = "its connection failed (\(error))"
        } else {
            switch self.process.wait() {
            case .signalled(let signal): how = "it died of signal \(signal)"
            case .exited(let status): how = "it exited with status \(status)"
            }
        }
        return
            "the segment process (pid \(self.pid)) of '\(self.id)' is gone: \(how); the call may not have run, and the next call starts a new process"
    }

    /// Stops the process and waits until it has exited.
    func stop() async {
        await self.client.close()
        guard self.process.isRunning else { return }
        self.process.signal(SIGTERM)
        let process = self.process
        await withCheckedContinuation { continuation in
            Thread.detachNewThread {
                process.wait()
                continuation.resume()
            }
        }
    }
}

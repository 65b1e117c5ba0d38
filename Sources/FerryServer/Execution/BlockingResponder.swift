import FerryHTTP
import FerryPosix
import Logging
import NIOCore

/// Serves one request from start to end on the calling thread, blocking on the disk and on the
/// client as it goes: the body of the iterative, thread-per-request and dispatcher models.
struct BlockingResponder {
    let files: FileService
    /// The blocking models' open-file cache (an event loop has its own).
    let openFiles: OpenFileCache?
    let registry: ConnectionRegistry
    let metrics: ServerMetrics
    let logger: Logger
    /// How long an answer waits for a client that takes no data (the idle timeout, as in every model).
    let sendTimeout: Duration

    /// Answers `request` on `connection`.
    /// - Returns: whether the connection can take another request.
    func serve(_ request: HTTPRequest, on connection: BlockingConnection) -> Bool {
        let (requestID, flag) = self.registry.begin(connection: connection.id)
        defer { self.registry.end(connection: connection.id, requestID: requestID) }
        let response = self.files.respond(to: request, using: self.openFiles)
        return self.send(
            response,
            for: request,
            connectionID: connection.id,
            requestID: requestID,
            descriptor: connection.descriptor,
            flag: flag
        )
    }

    /// Sends `response`, and counts it.
    /// - Returns: whether the connection can take another request.
    func send(
        _ response: FileResponse,
        for request: HTTPRequest?,
        connectionID: UInt64,
        requestID: UInt64,
        descriptor: Int32,
        flag: CancellationFlag
    ) -> Bool {
        var head = response.head
        let framing = ResponseFraming(
            head: &head,
            body: response.body,
            request: request,
            connectionID: connectionID,
            requestID: requestID,
            keepAlive: request?.keepAlive ?? false
        )
        var writer = SocketWriter(
            descriptor: descriptor,
            flag: flag,
            stallTimeoutMilliseconds: Int32(clamping: self.sendTimeout.wholeMilliseconds)
        )
        var headBytes = ByteBuffer()
        head.write(to: &headBytes)
        do {
            switch (framing.sendsBody, response.body) {
            case (true, .bytes(var bytes)) where bytes.readableBytes <= ResponseFraming.copiedBody:
                headBytes.writeBuffer(&bytes)
                try writer.write(headBytes)
            case (true, .bytes(let bytes)):
                try writer.write(headBytes, more: true)
                try writer.write(bytes)
            case (true, .file(let file, let offset, let length)) where framing.chunked:
                try writer.write(headBytes)
                writer.stopsMidWrite = false
                var position = offset
                while position < offset + length, !flag.isCancelled {
                    let chunk = min(ResponseFraming.chunkSize, offset + length - position)
                    try writer.write(ResponseFraming.chunkHeader(chunk))
                    try writer.writeFile(file, offset: position, length: chunk)
                    try writer.write(ResponseFraming.chunkEnd)
                    position += chunk
                }
                try writer.write(ResponseFraming.lastChunk(complete: !flag.isCancelled))
            case (true, .file(let file, let offset, let length)):
                try writer.write(headBytes, more: true)
                try writer.writeFile(file, offset: offset, length: length)
            default:
                try writer.write(headBytes)
            }
        } catch let error as SocketWriter.Stop {
            if flag.isCancelled {
                self.metrics.cancelled()
                self.logger.debug(
                    "request \(requestID) of connection \(connectionID) cancelled mid-body; closing the connection, since its framing cannot end early"
                )
            } else {
                if case .stalled = error { self.metrics.timedOut() }
                self.logger.debug("connection \(connectionID): \(error)")
            }
            return false
        } catch {
            return false
        }
        if flag.isCancelled { self.metrics.cancelled() }
        self.metrics.served(status: head.status.code, flag: flag)
        return framing.keepAlive
    }
}

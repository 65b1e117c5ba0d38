import Foundation
import NIOConcurrencyHelpers

/// Post-copy at the target: the process runs while its missing pages come over the hand-over's
/// connection. A thread of its own reads the guest's page faults and asks the source for each
/// page (a `want` frame); the connection's thread receives every page, asked for or pushed, and
/// installs it (``MissingPages/fill(at:with:)``), which wakes whoever waited for it.
final class PageFetcher: @unchecked Sendable {
    // Sendable: the socket is written under `sending` and read by one thread; `faultThread` and
    // `arrived` are the connection thread's.
    let pages: MissingPages
    let socket: MigrationSocket
    /// Pages that had not come at the commit.
    let expected: Int
    private(set) var arrived = 0
    /// Where each frame's pages land before they are installed: kept across frames.
    private var buffer = UnsafeMutableRawBufferPointer(start: nil, count: 0)
    private let sending = NIOLock()
    private let stopped = NIOLockedValueBox(false)
    private let faultsEnded = DispatchSemaphore(value: 0)
    private var faultThread: Thread?

    init(pages: MissingPages, socket: MigrationSocket, missing: [Range<Int>]) {
        self.pages = pages
        self.socket = socket
        self.expected = missing.reduce(0) { $0 + $1.count } / MissingPages.pageSize
    }

    deinit { self.buffer.deallocate() }

    /// Sends a frame, between the fault thread's requests.
    func send(_ body: (MigrationSocket) throws -> Void) throws {
        try self.sending.withLock { try body(self.socket) }
    }

    /// Receives the payload of a `pages` frame (its header came) and installs its pages.
    func receive(length: Int) throws {
        var landed = (offset: 0, count: 0)
        guard length - 12 <= self.pages.bytes else {
            throw MigrationError.protocolViolation("a pages frame of \(length) bytes, more than the guest's memory")
        }
        if length - 12 > self.buffer.count {
            self.buffer.deallocate()
            self.buffer = .allocate(byteCount: length - 12, alignment: 4096)
        }
        let buffer = self.buffer
        try self.socket.receivePages(length: length) { offset, count in
            landed = (offset, count)
            return UnsafeMutableRawBufferPointer(rebasing: buffer[0..<count])
        }
        try self.pages.fill(at: landed.offset, with: UnsafeRawBufferPointer(rebasing: buffer[0..<landed.count]))
        self.arrived += landed.count / MissingPages.pageSize
    }

    /// Starts asking for the pages the guest faults on.
    func answerFaults() {
        let thread = Thread { [self] in
            defer { self.faultsEnded.signal() }
            while !self.stopped.withLockedValue({ $0 }) {
                do {
                    guard let offset = try self.pages.nextFault(timeout: .milliseconds(10)) else { continue }
                    try self.send { try $0.sendWant(offset) }
                } catch {
                    // The connection's thread sees the same failure and settles it.
                    return
                }
            }
        }
        thread.name = "ferry-post-copy"
        self.faultThread = thread
        thread.start()
    }

    /// Receives the pages still missing, until all are there (then ``complete()`` tells the
    /// source so).
    func receiveRest() throws {
        while self.arrived < self.expected {
            let (type, length) = try self.socket.receiveHeader()
            guard type == .pages else {
                throw MigrationError.protocolViolation("expected pages from \(self.socket.peer), got \(type)")
            }
            try self.receive(length: length)
            HandoverPhase.reached(.postCopy, on: .target)
        }
    }

    /// Tells the source that every page is here: it lets go of its memory, and its move ends.
    func complete() throws {
        try self.send { try $0.send(.complete) }
    }

    /// Tells the fault thread to stop (it sees it within 10 ms); ``join()`` waits for it.
    func stop() {
        self.stopped.withLockedValue { $0 = true }
    }

    /// Waits for the fault thread to end (after ``stop()``).
    func join() {
        if self.faultThread != nil {
            self.faultsEnded.wait()
            self.faultThread = nil
        }
    }
}

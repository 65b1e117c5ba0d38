import CFerryLinux

/// What an edge-triggered socket is known to allow: set by its events, cleared when a read
/// comes back short or a write does not take everything. With edge-triggered epoll a step not
/// taken while the socket allows it may never be signalled again, so the owner keeps trying
/// until this says no.
public struct EdgeReadiness {
    public var readable = true
    public var writable = true
    /// The peer closed its side (or the socket failed): reads go on to the end, since no new
    /// edge will come for it.
    public var peerClosed = false

    public init() {}

    @inlinable
    public mutating func note(_ events: UInt32) {
        if events & (EPOLLIN.rawValue | EPOLLRDHUP.rawValue | EPOLLHUP.rawValue | EPOLLERR.rawValue) != 0 {
            self.readable = true
        }
        if events & (EPOLLOUT.rawValue | EPOLLHUP.rawValue | EPOLLERR.rawValue) != 0 { self.writable = true }
        if events & (EPOLLRDHUP.rawValue | EPOLLHUP.rawValue | EPOLLERR.rawValue) != 0 { self.peerClosed = true }
    }
}

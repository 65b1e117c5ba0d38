/// Bytes both ways over a connection used blocking, each call bounded in time: a plain
/// ``BlockingSocket``, or TLS over one.
public protocol BlockingStream {
    /// Sends every byte of `bytes`.
    func send(_ bytes: UnsafeRawBufferPointer) throws
    /// Fills the whole of `buffer`.
    func receive(into buffer: UnsafeMutableRawBufferPointer) throws
}

extension BlockingSocket: BlockingStream {}

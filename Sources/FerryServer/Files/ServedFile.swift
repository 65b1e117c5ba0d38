import CFerryLinux
import FerryHTTP
import NIOCore

#if canImport(Glibc)
import Glibc
#endif

/// One regular file as its answers are made: the open descriptor, and what every answer derives
/// from its stat, worked out once — ETag, Last-Modified, Content-Type — plus, for a small file
/// that was in the page cache, its bytes, so that head and body leave in one write. A larger
/// body goes by sendfile: copying it costs more than a second system call.
struct ServedFile: Sendable {
    let open: OpenFile
    /// The file's path under the root (a folder's `index.html` for the folder).
    let name: String
    let size: Int
    /// Last modification, in seconds since the epoch.
    let modified: Int
    let etag: String
    let lastModified: String
    let contentType: String
    /// The whole file, when it is small and was read without waiting for the disk.
    let bytes: ByteBuffer?
    /// Reached without a symbolic link, so ``OpenFileCache`` can watch every path it depends on.
    let cacheable: Bool

    /// - Parameter readingBytes: read a small file's bytes (not when this open only finds the file).
    init(open: OpenFile, name: String, cacheable: Bool, readingBytes: Bool) {
        let info = open.info
        self.open = open
        self.name = name
        self.cacheable = cacheable
        self.size = Int(info.st_size)
        self.modified = Int(info.st_mtim.tv_sec)
        self.etag =
            "\"\(String(UInt64(info.st_ino), radix: 16))-\(String(self.size, radix: 16))-"
            + "\(String(self.modified &* 1_000_000_000 &+ Int(info.st_mtim.tv_nsec), radix: 16))\""
        self.lastModified = HTTPDate.format(self.modified)
        self.contentType = MIMEType.forPath(name)
        self.bytes = cacheable && readingBytes ? Self.readWhole(open.descriptor, size: self.size) : nil
    }

    /// The file's bytes if it is small enough to copy and the page cache has them all (RWF_NOWAIT:
    /// an event loop must never wait for the disk here).
    private static func readWhole(_ descriptor: Int32, size: Int) -> ByteBuffer? {
        guard size <= ResponseFraming.copiedBody else { return nil }
        var buffer = ByteBuffer()
        var read = 0
        buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: max(size, 1)) { bytes in
            read = size == 0 ? 0 : ferry_pread_nowait(descriptor, bytes.baseAddress!, size, 0)
            return max(read, 0)
        }
        return read == size ? buffer : nil
    }

    /// The body for `range` of the file: from memory when its bytes are kept, else from the descriptor.
    func body(_ range: Range<Int>) -> FileResponse.Body {
        if let bytes = self.bytes {
            return .bytes(bytes.getSlice(at: bytes.readerIndex + range.lowerBound, length: range.count)!)
        }
        return .file(self.open, offset: range.lowerBound, length: range.count)
    }
}

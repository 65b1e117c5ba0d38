import CFerryLinux
import Glibc
@_spi(WASIPlatform) import WASI

/// WASI's file system for a guest: its ``GuestDirectory``s, each a ``LayeredView``, plugged into
/// WasmKit's WASI through its file system interface. Nothing else of the host is reachable.
final class LayeredFileSystem: FileSystemImplementation {
    private let views: [String: LayeredView]

    init(_ directories: [GuestDirectory]) throws {
        var views: [String: LayeredView] = [:]
        for directory in directories {
            guard views[directory.guestPath] == nil else {
                throw GuestError.badDirectory(spec: directory.guestPath, reason: "given twice")
            }
            views[directory.guestPath] = try LayeredView(directory)
        }
        self.views = views
    }

    func preopenDirectory(guestPath: String, hostPath: String) throws -> any WASIDir {
        guard let view = self.views[guestPath] else { throw WASIAbi.Errno.ENOENT }
        return LayeredDirectory(view: view, path: [], preopenPath: guestPath)
    }

    func openAt(
        dirFd: any WASIDir,
        path: String,
        oflags: WASIAbi.Oflags,
        fsRightsBase: WASIAbi.Rights,
        fsRightsInheriting: WASIAbi.Rights,
        fdflags: WASIAbi.Fdflags,
        symlinkFollow: Bool
    ) throws -> FdEntry {
        guard let directory = dirFd as? LayeredDirectory else { throw WASIAbi.Errno.EBADF }
        let view = directory.view
        let resolved = try view.resolve(path, from: view.node(at: directory.path), followLast: symlinkFollow)
        if let node = resolved.node, node.isDirectory {
            if oflags.contains(.CREAT) && oflags.contains(.EXCL) { throw WASIAbi.Errno.EEXIST }
            if fsRightsBase.contains(.FD_WRITE) || oflags.contains(.TRUNC) { throw WASIAbi.Errno.EISDIR }
            return .directory(LayeredDirectory(view: view, path: node.path, preopenPath: nil))
        }
        if oflags.contains(.DIRECTORY) { throw resolved.node == nil ? WASIAbi.Errno.ENOENT : WASIAbi.Errno.ENOTDIR }
        if resolved.node?.isSymlink == true { throw WASIAbi.Errno.ELOOP }
        var access: FileAccessMode = []
        if fsRightsBase.contains(.FD_READ) { access.insert(.read) }
        if fsRightsBase.contains(.FD_WRITE) { access.insert(.write) }
        var flags: CInt = access.contains(.write) ? (access.contains(.read) ? O_RDWR : O_WRONLY) : O_RDONLY
        if oflags.contains(.TRUNC) { flags |= O_TRUNC }
        if fdflags.contains(.APPEND) { flags |= O_APPEND }
        let writes = access.contains(.write) || oflags.contains(.TRUNC) || resolved.node == nil
        let fd: CInt
        if writes {
            fd = try view.openForWriting(
                resolved,
                flags: flags,
                create: oflags.contains(.CREAT),
                exclusive: oflags.contains(.EXCL)
            )
        } else {
            guard let node = resolved.node else { throw WASIAbi.Errno.ENOENT }
            fd = try view.openForReading(node, flags: flags)
        }
        return .file(HostFile(fd: fd, access: access))
    }
}

/// A directory of a ``LayeredView`` a guest holds open. It keeps its path, not its layers, so
/// that it sees what copy-ups and deletes through other descriptors did.
struct LayeredDirectory: WASIDir {
    let view: LayeredView
    let path: [String]
    let preopenPath: String?

    private var node: LayeredView.Node { get throws { try self.view.node(at: self.path) } }

    private func resolve(_ path: String, followLast: Bool) throws -> LayeredView.Resolved {
        try self.view.resolve(path, from: self.node, followLast: followLast)
    }

    func attributes() throws -> WASIAbi.Filestat { WASIAbi.Filestat(try self.node.stat) }
    func fileType() throws -> WASIAbi.FileType { .DIRECTORY }
    func status() throws -> WASIAbi.Fdflags { [] }
    func advise(offset: WASIAbi.FileSize, length: WASIAbi.FileSize, advice: WASIAbi.Advice) throws {}
    func close() throws {}

    func setTimes(atim: WASIAbi.Timestamp, mtim: WASIAbi.Timestamp, fstFlags: WASIAbi.FstFlags) throws {
        let (access, modification) = HostFile.times(atim: atim, mtim: mtim, fstFlags: fstFlags)
        try self.view.setTimes(self.node, access: access, modification: modification)
    }

    func readlink(atPath path: String) throws -> [UInt8] {
        guard let node = try self.resolve(path, followLast: false).node else { throw WASIAbi.Errno.ENOENT }
        return Array(try self.view.readlink(node).utf8)
    }

    func createDirectory(atPath path: String) throws {
        try self.view.createDirectory(self.resolve(path, followLast: false))
    }

    func removeDirectory(atPath path: String) throws {
        try self.view.remove(self.resolve(path, followLast: false), directory: true)
    }

    func removeFile(atPath path: String) throws {
        try self.view.remove(self.resolve(path, followLast: false), directory: false)
    }

    func symlink(from sourcePath: String, to destPath: String) throws {
        try self.view.createSymlink(target: sourcePath, at: self.resolve(destPath, followLast: false))
    }

    func rename(from sourcePath: String, toDir newDir: any WASIDir, to destPath: String) throws {
        guard let target = newDir as? LayeredDirectory, target.view === self.view else { throw WASIAbi.Errno.EXDEV }
        try self.view.rename(
            self.resolve(sourcePath, followLast: false),
            to: target.resolve(destPath, followLast: false)
        )
    }

    func readEntries(cookie: WASIAbi.DirCookie) throws -> WASIReaddirEntries {
        let entries = try self.view.entries(of: self.node)
        return WASIReaddirEntries(Entries(entries: entries, position: Int(clamping: cookie)))
    }

    func attributes(path: String, symlinkFollow: Bool) throws -> WASIAbi.Filestat {
        guard let node = try self.resolve(path, followLast: symlinkFollow).node else { throw WASIAbi.Errno.ENOENT }
        return WASIAbi.Filestat(node.stat)
    }

    func setFilestatTimes(
        path: String,
        atim: WASIAbi.Timestamp,
        mtim: WASIAbi.Timestamp,
        fstFlags: WASIAbi.FstFlags,
        symlinkFollow: Bool
    ) throws {
        guard let node = try self.resolve(path, followLast: symlinkFollow).node else { throw WASIAbi.Errno.ENOENT }
        let (access, modification) = HostFile.times(atim: atim, mtim: mtim, fstFlags: fstFlags)
        try self.view.setTimes(node, access: access, modification: modification)
    }

    private struct Entries: WASIReaddirIterator {
        let entries: [(name: String, type: WASIAbi.FileType, inode: UInt64)]
        var position: Int

        mutating func next() -> Result<WASIReaddirElement, any Error>? {
            guard self.position < self.entries.count else { return nil }
            let entry = self.entries[self.position]
            self.position += 1
            let dirent = WASIAbi.Dirent(
                dNext: UInt64(self.position),
                dIno: entry.inode,
                dirNameLen: UInt32(entry.name.utf8.count),
                dType: entry.type
            )
            return .success((dirent, entry.name))
        }

        mutating func close() {}
    }
}

/// A regular file a guest opened: a host descriptor in one layer.
struct HostFile: WASIFile {
    let fd: CInt
    let access: FileAccessMode

    var hostFileDescriptor: CInt? { self.fd }

    init(fd: CInt, access: FileAccessMode) {
        self.fd = fd
        self.access = access
    }

    func attributes() throws -> WASIAbi.Filestat {
        var result = stat()
        guard fstat(self.fd, &result) == 0 else { throw LayeredView.errno() }
        return WASIAbi.Filestat(result)
    }

    func fileType() throws -> WASIAbi.FileType { try self.attributes().filetype }

    func status() throws -> WASIAbi.Fdflags {
        let flags = fcntl(self.fd, F_GETFL)
        guard flags >= 0 else { throw LayeredView.errno() }
        var result: WASIAbi.Fdflags = []
        if flags & O_APPEND != 0 { result.insert(.APPEND) }
        if flags & O_NONBLOCK != 0 { result.insert(.NONBLOCK) }
        return result
    }

    func fdStat() throws -> WASIAbi.FdStat {
        var rights: WASIAbi.Rights = [.FD_SEEK, .FD_TELL, .FD_FILESTAT_GET, .FD_ADVISE]
        if self.access.contains(.read) { rights.insert(.FD_READ) }
        if self.access.contains(.write) {
            rights.formUnion([.FD_WRITE, .FD_DATASYNC, .FD_SYNC, .FD_FILESTAT_SET_SIZE, .FD_ALLOCATE])
        }
        return WASIAbi.FdStat(
            fsFileType: try self.fileType(),
            fsFlags: try self.status(),
            fsRightsBase: rights,
            fsRightsInheriting: []
        )
    }

    func setFdStatFlags(_ flags: WASIAbi.Fdflags) throws {
        var value = fcntl(self.fd, F_GETFL)
        guard value >= 0 else { throw LayeredView.errno() }
        value = flags.contains(.APPEND) ? value | O_APPEND : value & ~O_APPEND
        value = flags.contains(.NONBLOCK) ? value | O_NONBLOCK : value & ~O_NONBLOCK
        guard fcntl(self.fd, F_SETFL, value) == 0 else { throw LayeredView.errno() }
    }

    func setFilestatSize(_ size: WASIAbi.FileSize) throws {
        guard self.access.contains(.write) else { throw WASIAbi.Errno.EBADF }
        guard size <= UInt64(Int64.max), ftruncate(self.fd, off_t(size)) == 0 else { throw LayeredView.errno() }
    }

    func sync() throws { guard fsync(self.fd) == 0 else { throw LayeredView.errno() } }
    func datasync() throws { guard fdatasync(self.fd) == 0 else { throw LayeredView.errno() } }

    func tell() throws -> WASIAbi.FileSize { try self.seek(offset: 0, whence: .CUR) }

    func seek(offset: WASIAbi.FileDelta, whence: WASIAbi.Whence) throws -> WASIAbi.FileSize {
        let origin: CInt =
            switch whence {
            case .SET: SEEK_SET
            case .CUR: SEEK_CUR
            case .END: SEEK_END
            }
        let position = lseek(self.fd, off_t(offset), origin)
        guard position >= 0 else { throw LayeredView.errno() }
        return WASIAbi.FileSize(position)
    }

    func write(vectored buffers: GuestBuffers) throws -> WASIAbi.Size {
        guard self.access.contains(.write) else { throw WASIAbi.Errno.EBADF }
        return try self.transfer(buffers) { buffer, _ in Glibc.write(self.fd, buffer.baseAddress, buffer.count) }
    }

    func pwrite(vectored buffers: GuestBuffers, offset: WASIAbi.FileSize) throws -> WASIAbi.Size {
        guard self.access.contains(.write) else { throw WASIAbi.Errno.EBADF }
        return try self.transfer(buffers) { buffer, done in
            Glibc.pwrite(self.fd, buffer.baseAddress, buffer.count, off_t(offset) + off_t(done))
        }
    }

    func read(into buffers: GuestBuffers) throws -> WASIAbi.Size {
        guard self.access.contains(.read) else { throw WASIAbi.Errno.EBADF }
        return try self.transfer(buffers) { buffer, _ in Glibc.read(self.fd, buffer.baseAddress, buffer.count) }
    }

    func pread(into buffers: GuestBuffers, offset: WASIAbi.FileSize) throws -> WASIAbi.Size {
        guard self.access.contains(.read) else { throw WASIAbi.Errno.EBADF }
        return try self.transfer(buffers) { buffer, done in
            Glibc.pread(self.fd, buffer.baseAddress, buffer.count, off_t(offset) + off_t(done))
        }
    }

    /// Moves bytes buffer by buffer; stops early at a short transfer, like readv and writev.
    private func transfer(
        _ buffers: GuestBuffers,
        _ call: (UnsafeMutableRawBufferPointer, Int) -> Int
    ) throws -> WASIAbi.Size {
        var done = 0
        for index in 0..<buffers.count {
            var short = false
            try buffers.withHostBuffer(at: index) { buffer in
                let count = call(buffer, done)
                guard count >= 0 else { throw LayeredView.errno() }
                done += count
                short = count < buffer.count
                return count
            }
            if short { break }
        }
        return WASIAbi.Size(done)
    }

    func setTimes(atim: WASIAbi.Timestamp, mtim: WASIAbi.Timestamp, fstFlags: WASIAbi.FstFlags) throws {
        let (access, modification) = Self.times(atim: atim, mtim: mtim, fstFlags: fstFlags)
        guard futimens(self.fd, [access, modification]) == 0 else { throw LayeredView.errno() }
    }

    func advise(offset: WASIAbi.FileSize, length: WASIAbi.FileSize, advice: WASIAbi.Advice) throws {}

    func close() throws { guard Glibc.close(self.fd) == 0 else { throw LayeredView.errno() } }

    /// WASI's time flags as utimensat's two timespecs.
    static func times(
        atim: WASIAbi.Timestamp,
        mtim: WASIAbi.Timestamp,
        fstFlags: WASIAbi.FstFlags
    ) -> (timespec, timespec) {
        func time(_ value: WASIAbi.Timestamp, set: Bool, now: Bool) -> timespec {
            if now { return timespec(tv_sec: 0, tv_nsec: FERRY_UTIME_NOW) }
            if set { return timespec(tv_sec: Int(value / 1_000_000_000), tv_nsec: Int(value % 1_000_000_000)) }
            return timespec(tv_sec: 0, tv_nsec: FERRY_UTIME_OMIT)
        }
        return (
            time(atim, set: fstFlags.contains(.ATIM), now: fstFlags.contains(.ATIM_NOW)),
            time(mtim, set: fstFlags.contains(.MTIM), now: fstFlags.contains(.MTIM_NOW))
        )
    }
}

extension WASIAbi.Filestat {
    init(_ stat: stat) {
        func nanoseconds(_ time: timespec) -> UInt64 {
            UInt64(max(0, time.tv_sec)) * 1_000_000_000 + UInt64(time.tv_nsec)
        }
        let type: WASIAbi.FileType =
            switch stat.st_mode & S_IFMT {
            case S_IFDIR: .DIRECTORY
            case S_IFREG: .REGULAR_FILE
            case S_IFLNK: .SYMBOLIC_LINK
            case S_IFCHR: .CHARACTER_DEVICE
            case S_IFBLK: .BLOCK_DEVICE
            case S_IFSOCK: .SOCKET_STREAM
            default: .UNKNOWN
            }
        self.init(
            dev: UInt64(stat.st_dev),
            ino: UInt64(stat.st_ino),
            filetype: type,
            nlink: UInt64(stat.st_nlink),
            size: UInt64(max(0, stat.st_size)),
            atim: nanoseconds(stat.st_atim),
            mtim: nanoseconds(stat.st_mtim),
            ctim: nanoseconds(stat.st_ctim)
        )
    }
}

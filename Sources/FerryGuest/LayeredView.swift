import CFerryLinux
import Glibc
import NIOConcurrencyHelpers
@_spi(WASIPlatform) import WASI

/// The union of a ``GuestDirectory``'s layers, and every operation a guest can do on it.
///
/// Paths are resolved by Ferry, one name at a time over the merged tree, so `..` above the
/// directory a path starts from, absolute paths and symlinks that lead out (absolute, or up
/// past the top) are refused with `ENOTCAPABLE` whichever layer they are in. Each host call then
/// opens the layer's directory with `openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS)`, so a
/// symlink swapped in on the host afterwards cannot lead out either.
final class LayeredView: @unchecked Sendable {
    // Sendable: nothing here changes after init; the layers' contents are the kernel's to guard.
    let directory: GuestDirectory
    /// One descriptor per layer, upper first when there is one.
    private let layerFDs: [CInt]
    private let hasUpper: Bool
    private let rootLayers: [Int]

    static let whiteoutPrefix = ".wh."
    static let opaqueMarker = ".wh..wh..opq"
    private static let maxSymlinks = 40

    init(_ directory: GuestDirectory) throws {
        self.directory = directory
        var fds: [CInt] = []
        for path in directory.layers {
            let fd = Glibc.open(path, FERRY_O_PATH | O_DIRECTORY | O_CLOEXEC)
            guard fd >= 0 else {
                let reason = String(cString: strerror(Glibc.errno))
                for fd in fds { close(fd) }
                throw GuestError.badDirectory(spec: path, reason: "cannot open it as a directory: \(reason)")
            }
            fds.append(fd)
        }
        guard !fds.isEmpty else { throw GuestError.badDirectory(spec: directory.guestPath, reason: "it has no layers") }
        self.layerFDs = fds
        self.hasUpper = directory.upper != nil
        var roots: [Int] = []
        for layer in fds.indices {
            roots.append(layer)
            if (try? Self.exists(fds[layer], [Self.opaqueMarker])) == true { break }
        }
        self.rootLayers = roots
    }

    deinit { for fd in self.layerFDs { close(fd) } }

    // MARK: Nodes and resolution

    /// One name of the merged tree.
    struct Node {
        var path: [String]
        /// The layer the guest sees it from.
        var top: Int
        var stat: stat
        /// For a directory: the layers, top first, whose copies are merged.
        var layers: [Int]

        var isDirectory: Bool { self.stat.st_mode & S_IFMT == S_IFDIR }
        var isSymlink: Bool { self.stat.st_mode & S_IFMT == S_IFLNK }
    }

    /// What a path came to: the directory holding its last name, that name (nil when the path
    /// names that directory itself, like `.`), and the node when it exists.
    struct Resolved {
        var parent: Node
        var name: String?
        var node: Node?
    }

    func root() throws -> Node {
        do {
            try self.directory.firstUse?.run()
        } catch {
            throw WASIAbi.Errno.EIO
        }
        return Node(
            path: [],
            top: self.rootLayers[0],
            stat: try self.stat(self.rootLayers[0], []),
            layers: self.rootLayers
        )
    }

    /// The node at a path already resolved (a directory a guest holds open), or ENOENT when it is
    /// gone.
    func node(at path: [String]) throws -> Node {
        var node = try self.root()
        for name in path {
            guard node.isDirectory, let next = try self.child(name, of: node) else { throw WASIAbi.Errno.ENOENT }
            node = next
        }
        return node
    }

    /// Looks up `name` in a merged directory: in each of its layers, top first, one open of the
    /// directory and a stat each of the name and its whiteout.
    func child(_ name: String, of directory: Node) throws -> Node? {
        guard !name.hasPrefix(Self.whiteoutPrefix) else { return nil }
        let path = directory.path + [name]
        var found: Node?
        for layer in directory.layers {
            let parent = try self.open(layer, directory.path, FERRY_O_PATH | O_DIRECTORY)
            defer { close(parent) }
            if try Self.lstat(in: parent, Self.whiteoutPrefix + name) != nil { break }
            guard let stat = try Self.lstat(in: parent, name) else { continue }
            let isDirectory = stat.st_mode & S_IFMT == S_IFDIR
            if found == nil {
                found = Node(path: path, top: layer, stat: stat, layers: isDirectory ? [layer] : [])
                if !isDirectory { break }
            } else {
                // A file in a lower layer under a directory of an upper one is simply hidden.
                guard isDirectory else { break }
                found?.layers.append(layer)
            }
            if try Self.exists(parent, [name, Self.opaqueMarker]) { break }
        }
        return found
    }

    /// Resolves `path` from the directory `base`, following symlinks in the merged tree (the
    /// last one only when `followLast`).
    func resolve(_ path: String, from base: Node, followLast: Bool) throws -> Resolved {
        guard !path.hasPrefix("/") else { throw WASIAbi.Errno.ENOTCAPABLE }
        var pending = path.split(separator: "/").map(String.init)
        guard !pending.isEmpty else { throw WASIAbi.Errno.ENOENT }
        // A trailing slash asks for a directory, through a symlink if need be.
        let wantsDirectory = path.hasSuffix("/")
        let followLast = followLast || wantsDirectory
        var stack = [base]
        var symlinks = 0
        while !pending.isEmpty {
            let name = pending.removeFirst()
            let isLast = pending.isEmpty
            let directory = stack[stack.count - 1]
            switch name {
            case ".":
                if isLast { return Resolved(parent: directory, name: nil, node: directory) }
                continue
            case "..":
                guard stack.count > 1 else { throw WASIAbi.Errno.ENOTCAPABLE }
                stack.removeLast()
                if isLast { return Resolved(parent: stack[stack.count - 1], name: nil, node: stack[stack.count - 1]) }
                continue
            default:
                break
            }
            guard directory.isDirectory else { throw WASIAbi.Errno.ENOTDIR }
            guard let node = try self.child(name, of: directory) else {
                if isLast { return Resolved(parent: directory, name: name, node: nil) }
                throw WASIAbi.Errno.ENOENT
            }
            if node.isSymlink, !isLast || followLast {
                symlinks += 1
                guard symlinks <= Self.maxSymlinks else { throw WASIAbi.Errno.ELOOP }
                let target = try self.readlink(node)
                // The guest's view has no root to be absolute against: an absolute target leads out.
                guard !target.hasPrefix("/") else { throw WASIAbi.Errno.ENOTCAPABLE }
                pending = target.split(separator: "/").map(String.init) + pending
                continue
            }
            if isLast {
                if wantsDirectory, !node.isDirectory { throw WASIAbi.Errno.ENOTDIR }
                return Resolved(parent: directory, name: name, node: node)
            }
            stack.append(node)
        }
        // Only reached when a symlink's target was empty.
        throw WASIAbi.Errno.ENOENT
    }

    // MARK: Reading

    func readlink(_ node: Node) throws -> String {
        guard node.isSymlink else { throw WASIAbi.Errno.EINVAL }
        return try self.inParent(node.top, node.path) { directory, name in
            var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
            let count = Glibc.readlinkat(directory, name, &buffer, buffer.count - 1)
            guard count >= 0 else { throw Self.errno() }
            return String(decoding: buffer[..<count].map { UInt8(bitPattern: $0) }, as: UTF8.self)
        }
    }

    /// The merged entries of a directory, sorted, after `.` and `..`.
    func entries(of directory: Node) throws -> [(name: String, type: WASIAbi.FileType, inode: UInt64)] {
        var seen = Set<String>()
        var hidden = Set<String>()
        var merged: [(name: String, type: WASIAbi.FileType, inode: UInt64)] = []
        for layer in directory.layers {
            var whiteouts: [String] = []
            for entry in try self.list(layer, directory.path) where entry.name != Self.opaqueMarker {
                if entry.name.hasPrefix(Self.whiteoutPrefix) {
                    whiteouts.append(String(entry.name.dropFirst(Self.whiteoutPrefix.count)))
                    continue
                }
                guard !hidden.contains(entry.name), seen.insert(entry.name).inserted else { continue }
                merged.append((entry.name, Self.fileType(direntType: entry.type), entry.inode))
            }
            // A layer's whiteouts hide the layers below it, not itself.
            hidden.formUnion(whiteouts)
        }
        merged.sort { $0.name < $1.name }
        let inode = UInt64(directory.stat.st_ino)
        return [(".", .DIRECTORY, inode), ("..", .DIRECTORY, inode)] + merged
    }

    /// Opens an existing node for reading, from the layer the guest sees it in.
    func openForReading(_ node: Node, flags: CInt) throws -> CInt {
        try self.open(node.top, node.path, flags)
    }

    // MARK: Writing

    private var upper: Int {
        get throws {
            guard self.hasUpper else { throw WASIAbi.Errno.EROFS }
            return 0
        }
    }

    /// Opens `name` in `parent` for writing: copies a lower file up first, or creates it.
    func openForWriting(_ resolved: Resolved, flags: CInt, create: Bool, exclusive: Bool) throws -> CInt {
        let upper = try self.upper
        if let node = resolved.node {
            if create, exclusive { throw WASIAbi.Errno.EEXIST }
            guard !node.isDirectory else { throw WASIAbi.Errno.EISDIR }
            let copied = try self.copyUp(node)
            return try self.open(upper, copied.path, flags)
        }
        guard create, let name = resolved.name else { throw WASIAbi.Errno.ENOENT }
        let parent = try self.makeWritable(resolved.parent, creating: name)
        return try self.open(upper, parent.path + [name], flags | O_CREAT | O_EXCL, mode: 0o644)
    }

    func createDirectory(_ resolved: Resolved) throws {
        guard resolved.node == nil, let name = resolved.name else { throw WASIAbi.Errno.EEXIST }
        let upper = try self.upper
        let hadWhiteout = try self.hasWhiteout(name, in: resolved.parent)
        let parent = try self.makeWritable(resolved.parent, creating: name)
        try self.inParent(upper, parent.path + [name]) { directory, name in
            guard mkdirat(directory, name, 0o755) == 0 else { throw Self.errno() }
        }
        // Where a directory was deleted, the new one must not show the old one's entries.
        if hadWhiteout { try self.createMarker(upper, parent.path + [name, Self.opaqueMarker]) }
    }

    func createSymlink(target: String, at resolved: Resolved) throws {
        guard resolved.node == nil, let name = resolved.name else { throw WASIAbi.Errno.EEXIST }
        let upper = try self.upper
        let parent = try self.makeWritable(resolved.parent, creating: name)
        try self.inParent(upper, parent.path + [name]) { directory, name in
            guard symlinkat(target, directory, name) == 0 else { throw Self.errno() }
        }
    }

    /// Removes a file (or symlink) or an empty directory from the merged tree.
    func remove(_ resolved: Resolved, directory: Bool) throws {
        guard let node = resolved.node, let name = resolved.name else {
            throw resolved.name == nil ? WASIAbi.Errno.EBUSY : WASIAbi.Errno.ENOENT
        }
        let upper = try self.upper
        if directory {
            guard node.isDirectory else { throw WASIAbi.Errno.ENOTDIR }
            guard try self.entries(of: node).count == 2 else { throw WASIAbi.Errno.ENOTEMPTY }
        } else if node.isDirectory {
            throw WASIAbi.Errno.EISDIR
        }
        let parent = try self.makeWritable(resolved.parent, creating: nil)
        if node.top == upper {
            if directory { try self.emptyUpperDirectory(node.path) }
            try self.inParent(upper, node.path) { parentFD, name in
                guard unlinkat(parentFD, name, directory ? AT_REMOVEDIR : 0) == 0 else { throw Self.errno() }
            }
        }
        // Still seen from a lower layer: hide it.
        if try self.child(name, of: self.node(at: parent.path)) != nil {
            try self.createMarker(upper, parent.path + [Self.whiteoutPrefix + name])
        }
    }

    /// Renames within this view. A directory that lower layers have cannot move (EXDEV, as
    /// overlayfs answers); guests' `mv` then copies it.
    func rename(_ from: Resolved, to: Resolved) throws {
        guard let source = from.node, let sourceName = from.name, let targetName = to.name else {
            throw from.node == nil ? WASIAbi.Errno.ENOENT : WASIAbi.Errno.EBUSY
        }
        let upper = try self.upper
        if source.isDirectory, source.layers != [upper] { throw WASIAbi.Errno.EXDEV }
        if let target = to.node {
            if target.isDirectory != source.isDirectory {
                throw target.isDirectory ? WASIAbi.Errno.EISDIR : WASIAbi.Errno.ENOTDIR
            }
            if source.path == target.path { return }
            // Clear the target out of the merged tree first, leaving a whiteout if a lower layer has it.
            try self.remove(to, directory: target.isDirectory)
        }
        let copied = try self.copyUp(source)
        let targetHadWhiteout = try self.hasWhiteout(targetName, in: self.node(at: to.parent.path))
        let targetParent = try self.makeWritable(self.node(at: to.parent.path), creating: targetName)
        let sourceParentFD = try self.open(upper, Array(copied.path.dropLast()), FERRY_O_PATH | O_DIRECTORY)
        defer { close(sourceParentFD) }
        let targetParentFD = try self.open(upper, targetParent.path, FERRY_O_PATH | O_DIRECTORY)
        defer { close(targetParentFD) }
        guard renameat(sourceParentFD, sourceName, targetParentFD, targetName) == 0 else { throw Self.errno() }
        if source.isDirectory, targetHadWhiteout {
            try self.createMarker(upper, targetParent.path + [targetName, Self.opaqueMarker])
        }
        if try self.child(sourceName, of: self.node(at: from.parent.path)) != nil {
            try self.createMarker(upper, Array(copied.path.dropLast()) + [Self.whiteoutPrefix + sourceName])
        }
    }

    func setTimes(_ node: Node, access: timespec, modification: timespec) throws {
        let copied = try self.copyUp(node)
        try self.inParent(try self.upper, copied.path) { directory, name in
            guard utimensat(directory, name, [access, modification], AT_SYMLINK_NOFOLLOW) == 0 else {
                throw Self.errno()
            }
        }
    }

    // MARK: Copy-up and markers

    /// Makes sure `node` exists in the upper layer, copying it (and its parent directories) up
    /// from the layer it is seen in. Returns it as it is now.
    @discardableResult
    func copyUp(_ node: Node) throws -> Node {
        let upper = try self.upper
        let parent = try self.makeWritable(self.node(at: Array(node.path.dropLast())), creating: nil)
        if node.top == upper { return node }
        guard let name = node.path.last else { return node }
        let mode = node.stat.st_mode & 0o7777
        switch node.stat.st_mode & S_IFMT {
        case S_IFDIR:
            try self.inParent(upper, node.path) { directory, name in
                guard mkdirat(directory, name, mode) == 0 || Glibc.errno == EEXIST else { throw Self.errno() }
            }
        case S_IFLNK:
            let target = try self.readlink(node)
            try self.inParent(upper, node.path) { directory, name in
                guard symlinkat(target, directory, name) == 0 else { throw Self.errno() }
            }
        case S_IFREG:
            // Copied under a name guests cannot see, then renamed: a guest never meets half a file.
            let temporary = Self.whiteoutPrefix + Self.whiteoutPrefix + "copyup." + name
            let source = try self.open(node.top, node.path, O_RDONLY)
            defer { close(source) }
            try self.inParent(upper, node.path) { directory, _ in _ = unlinkat(directory, temporary, 0) }
            let target = try self.open(upper, parent.path + [temporary], O_WRONLY | O_CREAT | O_EXCL, mode: mode)
            defer { close(target) }
            try Self.copy(from: source, to: target)
            let times = [node.stat.st_atim, node.stat.st_mtim]
            _ = futimens(target, times)
            try self.inParent(upper, node.path) { directory, name in
                guard renameat(directory, temporary, directory, name) == 0 else { throw Self.errno() }
            }
        default:
            // Devices, sockets and fifos are not carried up.
            throw WASIAbi.Errno.EPERM
        }
        return try self.node(at: node.path)
    }

    /// Makes `directory` exist in the upper layer (copying up its chain of parents) so that
    /// `creating`, when given, can be made in it; refuses names reserved for markers.
    private func makeWritable(_ directory: Node, creating name: String?) throws -> Node {
        if let name {
            guard !name.hasPrefix(Self.whiteoutPrefix) else { throw WASIAbi.Errno.EPERM }
            guard name.utf8.count <= Int(NAME_MAX) else { throw WASIAbi.Errno.ENAMETOOLONG }
        }
        let upper = try self.upper
        var node = try self.root()
        for name in directory.path {
            guard let next = try self.child(name, of: node) else { throw WASIAbi.Errno.ENOENT }
            node = next.top == upper ? next : try self.copyUp(next)
        }
        if let name { try self.removeMarker(upper, node.path + [Self.whiteoutPrefix + name]) }
        return node
    }

    private func hasWhiteout(_ name: String, in directory: Node) throws -> Bool {
        guard self.hasUpper, directory.layers.first == 0 else { return false }
        return try Self.exists(self.layerFDs[0], directory.path + [Self.whiteoutPrefix + name])
    }

    private func createMarker(_ layer: Int, _ path: [String]) throws {
        close(try self.open(layer, path, O_WRONLY | O_CREAT, mode: 0o600))
    }

    private func removeMarker(_ layer: Int, _ path: [String]) throws {
        try self.inParent(layer, path) { directory, name in
            guard unlinkat(directory, name, 0) == 0 || Glibc.errno == ENOENT else { throw Self.errno() }
        }
    }

    /// Removes the markers a merged-empty directory may still hold in the upper layer.
    private func emptyUpperDirectory(_ path: [String]) throws {
        for entry in try self.list(0, path) where entry.name.hasPrefix(Self.whiteoutPrefix) {
            try self.removeMarker(0, path + [entry.name])
        }
    }

    // MARK: Host calls, each confined to one layer

    /// Opens a path in one layer; see `ferry_open_in_layer`.
    func open(_ layer: Int, _ path: [String], _ flags: CInt, mode: mode_t = 0) throws -> CInt {
        let fd = ferry_open_in_layer(self.layerFDs[layer], path.joined(separator: "/"), flags, UInt32(mode))
        guard fd >= 0 else { throw Self.errno() }
        return fd
    }

    /// Runs `body` with the descriptor of the directory holding `path` in `layer`, and its last name.
    private func inParent<T>(_ layer: Int, _ path: [String], _ body: (CInt, String) throws -> T) throws -> T {
        guard let name = path.last else { throw WASIAbi.Errno.EBUSY }
        let directory = try self.open(layer, Array(path.dropLast()), FERRY_O_PATH | O_DIRECTORY)
        defer { close(directory) }
        return try body(directory, name)
    }

    private func stat(_ layer: Int, _ path: [String]) throws -> stat {
        guard let stat = try self.lstat(layer, path) else { throw WASIAbi.Errno.ENOENT }
        return stat
    }

    /// The entry itself (a symlink is not followed), or nil when the layer lacks it.
    private func lstat(_ layer: Int, _ path: [String]) throws -> stat? {
        guard !path.isEmpty else {
            var result = Glibc.stat()
            guard fstat(self.layerFDs[layer], &result) == 0 else { throw Self.errno() }
            return result
        }
        do {
            return try self.inParent(layer, path) { try Self.lstat(in: $0, $1) }
        } catch WASIAbi.Errno.ENOENT, WASIAbi.Errno.ENOTDIR, WASIAbi.Errno.ELOOP {
            // A parent that is missing, not a directory, or a symlink: the layer has no such entry.
            return nil
        }
    }

    /// `name` in an open directory, not following a symlink; nil when there is none.
    private static func lstat(in directory: CInt, _ name: String) throws -> stat? {
        var result = Glibc.stat()
        guard fstatat(directory, name, &result, AT_SYMLINK_NOFOLLOW) == 0 else {
            if Glibc.errno == ENOENT || Glibc.errno == ENOTDIR { return nil }
            throw Self.errno()
        }
        return result
    }

    private static func exists(_ directory: CInt, _ path: [String]) throws -> Bool {
        let fd = ferry_open_in_layer(directory, path.joined(separator: "/"), FERRY_O_PATH, 0)
        if fd >= 0 {
            close(fd)
            return true
        }
        if Glibc.errno == ENOENT || Glibc.errno == ENOTDIR { return false }
        // ELOOP: the name is a symlink, which exists.
        if Glibc.errno == ELOOP { return true }
        throw Self.errno()
    }

    /// The entries of one layer's copy of a directory, without `.` and `..`.
    private func list(_ layer: Int, _ path: [String]) throws -> [(name: String, type: UInt8, inode: UInt64)] {
        let fd = try self.open(layer, path, O_RDONLY | O_DIRECTORY)
        guard let stream = fdopendir(fd) else {
            close(fd)
            throw Self.errno()
        }
        defer { closedir(stream) }
        var entries: [(name: String, type: UInt8, inode: UInt64)] = []
        while let entry = readdir(stream) {
            let name = withUnsafeBytes(of: &entry.pointee.d_name) { bytes in
                String(decoding: bytes.prefix { $0 != 0 }, as: UTF8.self)
            }
            if name != ".", name != ".." { entries.append((name, entry.pointee.d_type, UInt64(entry.pointee.d_ino))) }
        }
        return entries
    }

    private static func copy(from source: CInt, to target: CInt) throws {
        var buffer = [UInt8](repeating: 0, count: 64 << 10)
        while true {
            let count = read(source, &buffer, buffer.count)
            guard count >= 0 else { throw Self.errno() }
            if count == 0 { return }
            var written = 0
            while written < count {
                let n = buffer.withUnsafeBytes { write(target, $0.baseAddress! + written, count - written) }
                guard n > 0 else { throw Self.errno() }
                written += n
            }
        }
    }

    static func fileType(direntType: UInt8) -> WASIAbi.FileType {
        switch Int(direntType) {
        case Int(DT_DIR): .DIRECTORY
        case Int(DT_REG): .REGULAR_FILE
        case Int(DT_LNK): .SYMBOLIC_LINK
        case Int(DT_CHR): .CHARACTER_DEVICE
        case Int(DT_BLK): .BLOCK_DEVICE
        case Int(DT_SOCK): .SOCKET_STREAM
        default: .UNKNOWN
        }
    }

    /// The current errno as WASI's: the same names, mapped by hand (WasmKit keeps its table internal).
    static func errno(_ value: CInt = Glibc.errno) -> WASIAbi.Errno {
        switch value {
        case EPERM: .EPERM
        case ENOENT: .ENOENT
        case EIO: .EIO
        case EBADF: .EBADF
        case EAGAIN: .EAGAIN
        case ENOMEM: .ENOMEM
        case EACCES: .EACCES
        case EBUSY: .EBUSY
        case EEXIST: .EEXIST
        case EXDEV: .ENOTCAPABLE  // openat2 RESOLVE_BENEATH: the path led out of its layer
        case ENOTDIR: .ENOTDIR
        case EISDIR: .EISDIR
        case EINVAL: .EINVAL
        case ENFILE: .ENFILE
        case EMFILE: .EMFILE
        case EFBIG: .EFBIG
        case ENOSPC: .ENOSPC
        case ESPIPE: .ESPIPE
        case EROFS: .EROFS
        case EMLINK: .EMLINK
        case ENAMETOOLONG: .ENAMETOOLONG
        case ENOTEMPTY: .ENOTEMPTY
        case ELOOP: .ELOOP
        case EDQUOT: .EDQUOT
        case EOVERFLOW: .EOVERFLOW
        case ENOTSUP: .ENOTSUP
        default: .EIO
        }
    }
}

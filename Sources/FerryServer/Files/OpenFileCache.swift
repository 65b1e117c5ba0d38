import NIOCore
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// nginx's `open_file_cache`, kept exact: per request path, the open file and what its answers
/// are made of (``ServedFile``), so a hot file costs no path walk, open, stat or close — and a
/// small one no read either.
///
/// nginx re-checks a cached file every `open_file_cache_valid` (60 s by default) and serves what
/// it cached until then. Here inotify watches each cached file and every folder on its path, and
/// each look-up first reads the queued notices (one non-blocking read; nothing queued is the
/// common case), so a change that finished before a request began — written in place, replaced
/// by a rename, removed, a folder above it moved — is seen by that request.
///
/// Only paths without symbolic links are cached: a notice names the path it was made through,
/// so a file reached by a link could change unseen under another name. Those, and every path
/// when inotify is unavailable (a user has 128 instances by default), are opened per request.
final class OpenFileCache: Sendable {
    /// Entries kept at most (nginx's `open_file_cache max=`).
    static let maximumEntries = 1000
    /// File bodies kept in memory at most, in all.
    static let maximumBytes = 16 << 20

    private struct State: ~Copyable {
        var entries: [String: ServedFile] = [:]
        var bytes = 0
        /// Notices applied so far: a file opened while this moved may be stale already.
        var notices: UInt64 = 0
        /// Watched files and folders by watch descriptor, as paths under the root ("" is the root).
        var files: [Int32: String] = [:]
        var fileWatches: [String: Int32] = [:]
        var folders: [Int32: String] = [:]
        var folderWatches: [String: Int32] = [:]
    }

    private let state = Mutex(State())
    private let inotify: Int32
    private let rootFD: Int32

    /// - Returns: nil when inotify cannot be had (then nothing is cached).
    init?(rootFD: Int32) {
        let inotify = inotify_init1(Int32(IN_NONBLOCK | IN_CLOEXEC))
        guard inotify >= 0 else { return nil }
        self.inotify = inotify
        self.rootFD = rootFD
    }

    deinit { close(self.inotify) }

    /// The cached file for `path` if nothing changed it; otherwise what `open` gives, kept when
    /// it can be watched. `open`'s argument says whether to read a small file's bytes.
    ///
    /// A miss opens twice: the first open finds which file the path names, which is then watched,
    /// and the second reads it — so a change after that read is always noticed — and is kept only
    /// if no notice at all came in between.
    func file(
        at path: String,
        open: (_ withBytes: Bool) -> Result<ServedFile, RequestPath.Refusal>
    ) -> Result<ServedFile, RequestPath.Refusal> {
        let cached = self.state.withLock { state -> ServedFile? in
            self.readNotices(&state)
            return state.entries[path]
        }
        if let cached { return .success(cached) }
        let first = open(false)
        guard case .success(let found) = first, found.cacheable else { return first }
        let before = self.state.withLock { state -> UInt64? in
            guard self.watch(found.name, in: &state) else { return nil }
            self.readNotices(&state)
            return state.notices
        }
        guard let before else { return first }
        let second = open(true)
        guard case .success(let file) = second, file.name == found.name else { return second }
        self.state.withLock { state in
            self.readNotices(&state)
            guard state.notices == before else { return }
            self.keep(file, as: path, in: &state)
        }
        return second
    }

    private func keep(_ file: ServedFile, as path: String, in state: inout State) {
        let bytes = file.bytes == nil ? 0 : file.size
        while !state.entries.isEmpty,
            state.entries.count >= Self.maximumEntries || state.bytes + bytes > Self.maximumBytes
        {
            // Any entry will do: a hot one comes back at the cost of one miss.
            self.drop(state.entries.first!.key, in: &state)
        }
        state.entries[path] = file
        state.bytes += bytes
    }

    private func drop(_ path: String, in state: inout State) {
        guard let file = state.entries.removeValue(forKey: path) else { return }
        if file.bytes != nil { state.bytes -= file.size }
        // The last entry of a file takes its watch along; folders stay watched (there are few).
        guard !state.entries.values.contains(where: { $0.name == file.name }),
            let watch = state.fileWatches.removeValue(forKey: file.name)
        else { return }
        state.files[watch] = nil
        inotify_rm_watch(self.inotify, watch)
    }

    /// Watches the file `name` and every folder from the root down to it.
    private func watch(_ name: String, in state: inout State) -> Bool {
        var folder = ""
        for component in [Substring("")] + name.split(separator: "/").dropLast() {
            folder = folder.isEmpty ? String(component) : folder + "/" + component
            guard state.folderWatches[folder] == nil else { continue }
            let changes =
                IN_CREATE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO | IN_ATTRIB | IN_DELETE_SELF | IN_MOVE_SELF
            let watch = inotify_add_watch(self.inotify, self.procPath(folder), UInt32(changes | IN_ONLYDIR))
            guard watch >= 0 else { return false }
            state.folders[watch] = folder
            state.folderWatches[folder] = watch
        }
        guard state.fileWatches[name] == nil else { return true }
        let changes = IN_MODIFY | IN_ATTRIB | IN_CLOSE_WRITE | IN_DELETE_SELF | IN_MOVE_SELF
        let watch = inotify_add_watch(self.inotify, self.procPath(name), UInt32(changes))
        guard watch >= 0 else { return false }
        state.files[watch] = name
        state.fileWatches[name] = watch
        return true
    }

    /// `path` under the root, through the root's descriptor (the server's working directory may
    /// not be where a relative root was named).
    private func procPath(_ path: String) -> String {
        "/proc/self/fd/\(self.rootFD)" + (path.isEmpty ? "" : "/" + path)
    }

    /// Drops every entry the queued notices say may have changed.
    private func readNotices(_ state: inout State) {
        let headerSize = MemoryLayout<inotify_event>.size
        withUnsafeTemporaryAllocation(byteCount: 4096, alignment: 8) { buffer in
            while true {
                let count = read(self.inotify, buffer.baseAddress!, buffer.count)
                guard count > 0 else { return }
                var offset = 0
                while offset + headerSize <= count {
                    let event = (buffer.baseAddress! + offset).loadUnaligned(as: inotify_event.self)
                    let name =
                        event.len == 0
                        ? ""
                        : String(
                            cString: (buffer.baseAddress! + offset + headerSize).assumingMemoryBound(to: CChar.self)
                        )
                    self.apply(watch: event.wd, mask: event.mask, name: name, to: &state)
                    offset += headerSize + Int(event.len)
                }
            }
        }
    }

    private func apply(watch: Int32, mask: UInt32, name: String, to state: inout State) {
        state.notices &+= 1
        let ignored = mask & UInt32(IN_IGNORED) != 0
        let changed: String
        if let file = state.files[watch] {
            changed = file
            if ignored {
                state.files[watch] = nil
                state.fileWatches[file] = nil
            }
        } else if let folder = state.folders[watch] {
            // A change to one name in the folder, or to the folder itself (no name).
            changed = name.isEmpty ? folder : (folder.isEmpty ? name : folder + "/" + name)
            if ignored {
                state.folders[watch] = nil
                state.folderWatches[folder] = nil
            }
        } else if mask & UInt32(IN_Q_OVERFLOW) != 0 {
            changed = ""  // notices were lost: everything goes
        } else {
            return  // a watch already given up
        }
        let stale = state.entries.filter { _, file in
            changed.isEmpty || file.name == changed || file.name.hasPrefix(changed + "/")
        }
        for path in stale.keys { self.drop(path, in: &state) }
    }
}

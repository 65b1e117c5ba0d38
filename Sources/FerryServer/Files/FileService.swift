import CFerryLinux
import FerryHTTP
import NIOCore

#if canImport(Glibc)
import Glibc
#endif

/// The seed's file server, as logic: maps a request to a response for files under one root.
///
/// Every path is opened relative to the root's descriptor with `openat2(RESOLVE_BENEATH)`, so the
/// kernel itself refuses `..` past the root, absolute paths and symlinks that lead out; the
/// checks on the decoded path before that give each refusal its own clear message.
public final class FileService: Sendable {
    public struct Error: Swift.Error, CustomStringConvertible {
        public var description: String
    }

    /// The served directory as given.
    public let root: String
    private let rootFD: Int32
    /// Whether those who serve keep open files (``makeCache()``).
    private let keepsOpenFiles: Bool
    /// Optional per-client soft state; nil serves without sessions.
    public let sessions: SessionStore<FileSession>?
    /// The Cache-Control every file answer carries, for caches in front (a CDN's edges); none when nil.
    public let cacheControl: String?

    /// - Parameters:
    ///   - sessionTTL: keep a session per client (a `ferry-session` cookie) for this long after its
    ///     last request; nil keeps none.
    ///   - cacheControl: the Cache-Control of file answers, e.g. `max-age=60`, as nginx's `expires`.
    ///   - openFileCache: keep open files and small files' bytes, watched by inotify (``OpenFileCache``).
    /// - Throws: ``Error`` when `root` is not a readable directory.
    public init(
        root: String,
        sessionTTL: Duration? = nil,
        cacheControl: String? = nil,
        openFileCache: Bool = true
    ) throws {
        self.sessions = sessionTTL.map { SessionStore(ttl: $0) }
        self.cacheControl = cacheControl
        let fd = Glibc.open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else {
            throw Error(
                description:
                    "cannot serve '\(root)': \(String(cString: strerror(errno))); pass --root a readable directory"
            )
        }
        self.root = root
        self.rootFD = fd
        self.keepsOpenFiles = openFileCache
    }

    /// An open-file cache for one who serves: each event loop has its own, as each nginx worker
    /// does (one shared by the loops serialized every look-up on its lock, whose hold includes a
    /// read of the inotify queue), and the blocking models' threads share one. Nil when the
    /// server keeps none or inotify is unavailable.
    func makeCache() -> OpenFileCache? {
        self.keepsOpenFiles ? OpenFileCache(rootFD: self.rootFD) : nil
    }

    deinit { close(self.rootFD) }

    /// Answers `request`, opening its file afresh. The returned file body, if any, owns an open
    /// descriptor.
    public func respond(to request: HTTPRequest) -> FileResponse {
        self.respond(to: request, using: nil)
    }

    /// Answers `request` through `cache` (``makeCache()``).
    func respond(to request: HTTPRequest, using cache: OpenFileCache?) -> FileResponse {
        var response = self.respondFromFiles(to: request, using: cache)
        if let sessions = self.sessions { Self.attachSession(from: sessions, for: request, to: &response.head) }
        return response
    }

    /// Counts the client's requests in its session and says so in `Ferry-Session-Requests`. The
    /// file answer never depends on the session: a lost session (expired, server restarted) only
    /// starts a new count under a new cookie.
    private static func attachSession(
        from sessions: SessionStore<FileSession>,
        for request: HTTPRequest,
        to head: inout HTTPResponseHead
    ) {
        let session = sessions.update(FileSession.id(inCookies: request.headers["cookie"]), creating: FileSession()) {
            $0.requests += 1
            $0.lastTarget = request.target
        }
        head.headers.add("Ferry-Session-Requests", String(session.value.requests))
        if session.isNew {
            let seconds = sessions.ttl.components.seconds
            head.headers.add(
                "Set-Cookie",
                "\(FileSession.cookieName)=\(session.id); Path=/; Max-Age=\(seconds); HttpOnly; SameSite=Lax"
            )
        }
    }

    private func respondFromFiles(to request: HTTPRequest, using cache: OpenFileCache?) -> FileResponse {
        guard request.method == "GET" || request.method == "HEAD" else {
            var response = FileResponse.text(
                .methodNotAllowed,
                "\(request.method) is not supported; this server answers GET and HEAD"
            )
            response.head.headers.add("Allow", "GET, HEAD")
            return response
        }
        if request.hasBody {
            return .text(.badRequest, "a \(request.method) request must not carry a body")
        }
        let path: String
        switch RequestPath.resolve(request.target) {
        case .success(let resolved): path = resolved
        case .failure(let refusal): return .text(refusal.status, refusal.message)
        }
        let opened = cache.map { $0.file(at: path) { self.open(path, withBytes: $0) } } ?? self.open(path)
        switch opened {
        case .success(let file): return self.respond(to: request, with: file)
        case .failure(let refusal): return .text(refusal.status, refusal.message)
        }
    }

    /// Opens the file `path` names (a folder's `index.html` for a folder), without following a
    /// symbolic link when it can, so that the cache may keep it.
    private func open(_ path: String, withBytes: Bool = true) -> Result<ServedFile, RequestPath.Refusal> {
        let display = "/" + (path == "." ? "" : path)
        var cacheable = true
        var fd = Self.openBeneath(self.rootFD, path, cacheable: &cacheable)
        guard fd >= 0 else { return .failure(Self.refusal(errno: errno, display: display)) }
        var info = stat()
        fstat(fd, &info)
        let isIndex = info.st_mode & S_IFMT == S_IFDIR
        if isIndex {
            let index = Self.openBeneath(fd, "index.html", cacheable: &cacheable)
            let error = errno
            close(fd)
            guard index >= 0 else {
                if error == ENOENT {
                    return .failure(
                        .init(
                            status: .forbidden,
                            message: "\(display) is a directory without index.html; directory listings are not served"
                        )
                    )
                }
                return .failure(Self.refusal(errno: error, display: display + "/index.html"))
            }
            fd = index
            fstat(fd, &info)
        }
        guard info.st_mode & S_IFMT == S_IFREG else {
            close(fd)
            return .failure(.init(status: .forbidden, message: "\(display) is not a regular file"))
        }
        let name = isIndex ? (path == "." ? "index.html" : path + "/index.html") : path
        return .success(
            ServedFile(
                open: OpenFile(descriptor: fd, info: info),
                name: name,
                cacheable: cacheable,
                readingBytes: withBytes
            )
        )
    }

    /// Opens `path` under `directory` without following a symbolic link, else (one on the way)
    /// following those that stay beneath it and clearing `cacheable`.
    private static func openBeneath(_ directory: Int32, _ path: String, cacheable: inout Bool) -> Int32 {
        let fd = ferry_open_beneath_without_links(directory, path, O_RDONLY | O_NONBLOCK)
        guard fd < 0, errno == ELOOP else { return fd }
        cacheable = false
        return ferry_open_beneath(directory, path, O_RDONLY | O_NONBLOCK)
    }

    private static func refusal(errno error: Int32, display: String) -> RequestPath.Refusal {
        switch error {
        case ENOENT, ENOTDIR:
            .init(status: .notFound, message: "\(display) does not exist under the served root")
        case EXDEV, ELOOP:
            .init(
                status: .forbidden,
                message: "\(display) leads outside the served root (through a symlink or an absolute path)"
            )
        case EACCES, EPERM:
            .init(status: .forbidden, message: "\(display) is not readable by the server")
        default:
            .init(status: .internalServerError, message: "\(display): \(String(cString: strerror(error)))")
        }
    }

    private func respond(to request: HTTPRequest, with file: ServedFile) -> FileResponse {
        var headers: HTTPHeaders = [
            ("Last-Modified", file.lastModified),
            ("ETag", file.etag),
            ("Accept-Ranges", "bytes"),
        ]
        if let cacheControl = self.cacheControl { headers.add("Cache-Control", cacheControl) }
        if Self.notModified(request, etag: file.etag, modified: file.modified) {
            return FileResponse(head: .init(status: .notModified, headers: headers), body: .none)
        }
        headers.add("Content-Type", file.contentType)
        switch ByteRange.parse(request.headers["range"], size: file.size) {
        case .none:
            return FileResponse(head: .init(status: .ok, headers: headers), body: file.body(0..<file.size))
        case .unsatisfiable:
            var response = FileResponse.text(
                .rangeNotSatisfiable,
                "range \(request.headers["range"] ?? "") is outside the file's \(file.size) bytes"
            )
            response.head.headers.add("Content-Range", "bytes */\(file.size)")
            return response
        case .range(let range):
            headers.add("Content-Range", "bytes \(range.lowerBound)-\(range.upperBound - 1)/\(file.size)")
            return FileResponse(head: .init(status: .partialContent, headers: headers), body: file.body(range))
        }
    }

    /// RFC 9110 §13.2.2: If-None-Match wins over If-Modified-Since.
    private static func notModified(_ request: HTTPRequest, etag: String, modified: Int) -> Bool {
        if let match = request.headers["if-none-match"] {
            return match == "*"
                || match.split(separator: ",").contains { tag in
                    let trimmed = tag.trimmingPrefix(" ").trimmingPrefix("W/")
                    return trimmed.trimmingSuffix(" ") == etag
                }
        }
        if let since = request.headers["if-modified-since"].flatMap(HTTPDate.parse) {
            return modified <= since
        }
        return false
    }
}

/// An open file that closes itself when the last response using it is done.
public final class OpenFile: @unchecked Sendable {
    public let descriptor: Int32
    let info: stat

    init(descriptor: Int32, info: stat) {
        self.descriptor = descriptor
        self.info = info
    }

    deinit { close(self.descriptor) }
}

/// What the file server sends back: a head and what follows it.
public struct FileResponse: Sendable {
    public enum Body: Sendable {
        case none
        case bytes(ByteBuffer)
        case file(OpenFile, offset: Int, length: Int)

        /// The number of bytes the body has (what Content-Length announces, even for HEAD).
        public var length: Int {
            switch self {
            case .none: 0
            case .bytes(let buffer): buffer.readableBytes
            case .file(_, _, let length): length
            }
        }
    }

    public var head: HTTPResponseHead
    public var body: Body

    public init(head: HTTPResponseHead, body: Body) {
        self.head = head
        self.body = body
    }

    /// A short plain-text answer, the kind every error gets.
    public static func text(_ status: HTTPStatus, _ message: String) -> FileResponse {
        FileResponse(
            head: .init(status: status, headers: [("Content-Type", "text/plain; charset=utf-8")]),
            body: .bytes(ByteBuffer(string: status.plainText(message)))
        )
    }
}

extension Substring {
    fileprivate func trimmingPrefix(_ prefix: String) -> Substring {
        var result = self
        while result.hasPrefix(prefix) { result = result.dropFirst(prefix.count) }
        return result
    }

    fileprivate func trimmingSuffix(_ suffix: String) -> Substring {
        var result = self
        while result.hasSuffix(suffix) { result = result.dropLast(suffix.count) }
        return result
    }
}

/// What the file server keeps per client: soft state, lost without harm.
public struct FileSession: Sendable, Equatable {
    public static let cookieName = "ferry-session"

    /// Requests this client made in this session, this one included.
    public var requests = 0
    /// The last target it asked for.
    public var lastTarget = ""

    public init() {}

    /// The session id in a `Cookie` header, if there is one.
    static func id(inCookies header: String?) -> String? {
        guard let header else { return nil }
        for pair in header.split(separator: ";") {
            let trimmed = pair.drop { $0 == " " }
            if trimmed.hasPrefix(Self.cookieName + "=") {
                return String(trimmed.dropFirst(Self.cookieName.count + 1))
            }
        }
        return nil
    }
}

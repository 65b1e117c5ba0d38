import NIOConcurrencyHelpers

/// A directory a guest is given, seen as layers: the seed's union file system, as a container's
/// image layers and its own writable layer.
///
/// The guest sees one tree: a name is taken from the topmost layer that has it; directories of
/// the same name in several layers are merged. Lower layers are never written. The first write
/// to a file from a lower layer copies it up into the upper layer; deleting something a lower
/// layer has leaves a *whiteout* (`.wh.NAME`) in the upper layer; a directory made where one was
/// deleted is marked *opaque* (`.wh..wh..opq`) so that the lower one's entries stay hidden.
/// These are the names AUFS uses; guests can neither see nor make names starting with `.wh.`.
public struct GuestDirectory: Sendable, Equatable, CustomStringConvertible {
    /// Where the guest finds it, e.g. `/data`.
    public var guestPath: String
    /// The writable layer on the host; nil for a read-only view.
    public var upper: String?
    /// Read-only layers on the host, topmost first.
    public var lowers: [String]
    /// Run once, the first time the guest uses the directory (a layer copied on first use).
    public var firstUse: GuestDirectoryHook?

    public init(guestPath: String, upper: String?, lowers: [String] = [], firstUse: GuestDirectoryHook? = nil) {
        self.guestPath = guestPath
        self.upper = upper
        self.lowers = lowers
        self.firstUse = firstUse
    }

    public static func == (left: GuestDirectory, right: GuestDirectory) -> Bool {
        left.guestPath == right.guestPath && left.upper == right.upper && left.lowers == right.lowers
            && left.firstUse === right.firstUse
    }

    /// Parses `HOST[:GUEST][:ro]`: HOST writable (or read-only with `:ro`), seen at GUEST (at
    /// HOST's own path when left out).
    public init(parsing spec: String) throws {
        var parts = spec.split(separator: ":", omittingEmptySubsequences: false).map(String.init)
        let readOnly = parts.count > 1 && parts.last == "ro"
        if readOnly { parts.removeLast() }
        guard (1...2).contains(parts.count), !parts[0].isEmpty, parts.count == 1 || !parts[1].isEmpty else {
            throw GuestError.badDirectory(spec: spec, reason: "write it as HOST[:GUEST][:ro]")
        }
        let host = parts[0]
        let guest = parts.count == 2 ? parts[1] : host
        self.init(guestPath: guest, upper: readOnly ? nil : host, lowers: readOnly ? [host] : [])
    }

    var layers: [String] { (self.upper.map { [$0] } ?? []) + self.lowers }

    public var description: String {
        let layers = (self.upper.map { ["\($0) (writable)"] } ?? []) + self.lowers.map { "\($0) (read-only)" }
        return "\(self.guestPath) = \(layers.joined(separator: " over "))"
    }
}

/// Work to do once, the first time a guest touches a directory: a node fills a layer it copies
/// on first use. Guests that touch it meanwhile wait for it; a failure is the guest's EIO, and
/// the next use tries again.
public final class GuestDirectoryHook: Sendable {
    private let body: @Sendable () throws -> Void
    private let done = NIOLockedValueBox(false)
    private let running = NIOLock()

    public init(_ body: @escaping @Sendable () throws -> Void) { self.body = body }

    func run() throws {
        guard !self.done.withLockedValue({ $0 }) else { return }
        try self.running.withLock {
            guard !self.done.withLockedValue({ $0 }) else { return }
            try self.body()
            self.done.withLockedValue { $0 = true }
        }
    }
}

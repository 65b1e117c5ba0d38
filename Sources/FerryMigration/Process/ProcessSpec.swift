import FerryGuest
import Foundation

/// What a process is asked to run: everything a node needs to start it, and to start it again
/// elsewhere. It travels with the process when it moves.
public struct ProcessSpec: Codable, Sendable, Equatable {
    /// Unique in the cluster: 1 to 64 letters, digits, `.`, `_` or `-`.
    public var name: String
    /// The module's SHA-256, as admitted (signature included).
    public var digest: String
    /// The export to call; nil runs the module as a WASI command (`_start`).
    public var export: String?
    /// The export's arguments as text (read as its parameter types), or the command's arguments.
    public var arguments: [String]
    public var fuel: UInt64?
    public var maxMemoryBytes: Int?
    /// `HOST[:GUEST][:ro]`: the guest sees HOST at GUEST; its writes go to a layer of its own
    /// over HOST, which moves with it.
    public var directories: [String]
    /// `GUEST=HOST`: read-only layers under the directory seen at GUEST.
    public var lowers: [String]
    /// Bytes of memory to keep, at the address the call returns, as the result.
    public var resultBytes: Int?
    /// Spawned with `--pin`: it never moves (nil in specs from before pins existed).
    public var pinned: Bool?
    /// What the guest reads with `ferry.input`: the parameters of a remote evaluation (the
    /// weights a federated round starts from), at most ``maxInputBytes``.
    public var input: Data?

    public static let maxInputBytes = 1 << 20

    public init(
        name: String,
        digest: String,
        export: String? = nil,
        arguments: [String] = [],
        fuel: UInt64? = nil,
        maxMemoryBytes: Int? = nil,
        directories: [String] = [],
        lowers: [String] = [],
        resultBytes: Int? = nil,
        pinned: Bool = false
    ) {
        self.pinned = pinned ? true : nil
        self.name = name
        self.digest = digest
        self.export = export
        self.arguments = arguments
        self.fuel = fuel
        self.maxMemoryBytes = maxMemoryBytes
        self.directories = directories
        self.lowers = lowers
        self.resultBytes = resultBytes
    }

    /// The limits the guest runs under.
    public var limits: GuestLimits {
        var limits = GuestLimits(fuel: self.fuel)
        if let maxMemoryBytes { limits.maxMemoryBytes = maxMemoryBytes }
        return limits
    }

    public var isPinned: Bool { self.pinned == true }

    /// The export the scheduler calls.
    var entry: String { self.export ?? "_start" }

    /// Refuses names that could not be a claim at the endpoint daemon or a file name.
    public static func validate(name: String) throws {
        let allowed = name.unicodeScalars.allSatisfy {
            ("a"..."z").contains($0) || ("A"..."Z").contains($0) || ("0"..."9").contains($0)
                || "._-".unicodeScalars.contains($0)
        }
        guard (1...64).contains(name.count), allowed, name != ".", name != ".." else {
            throw ProcessError.badName(name)
        }
    }
}

/// A process as `ferry ps` shows it.
public struct ProcessSummary: Codable, Sendable, Equatable {
    public var name: String
    public var node: String
    /// The module's SHA-256.
    public var digest: String
    /// `running`, `waiting`, `moving`, `exited` or `failed`.
    public var state: String
    public var epoch: UInt64
    public var memoryBytes: Int
    public var cpuMilliseconds: Int
    public var moves: Int
    /// Spawned with `--pin`: the balancer never moves it (nil when not).
    public var pinned: Bool?
    /// Why it failed, or its exit code, once it ended.
    public var detail: String?

    enum CodingKeys: String, CodingKey {
        case name, node, digest, state, epoch, moves, pinned, detail
        case memoryBytes = "memory_bytes"
        case cpuMilliseconds = "cpu_ms"
    }
}

/// How a process ended.
public struct ProcessOutcome: Codable, Sendable, Equatable {
    /// The export's results, as text, one per value.
    public var values: [String]
    /// The result read from memory (`resultBytes`), as hex.
    public var resultHex: String?
    /// A WASI command's exit code.
    public var exitCode: UInt32?
    /// Why it failed (a limit, a trap, killed, lost with its node).
    public var failure: String?

    public init(values: [String] = [], resultHex: String? = nil, exitCode: UInt32? = nil, failure: String? = nil) {
        self.values = values
        self.resultHex = resultHex
        self.exitCode = exitCode
        self.failure = failure
    }
}

/// What a process move did, as `ferry migrate --json` prints it.
public struct MoveReport: Codable, Sendable, Equatable {
    public var process: String
    /// How it moved (``MoveMode``).
    public var mode: String
    public var from: String
    public var to: String
    /// Everything sent to the target: code, memory, state and resources.
    public var bytesSent: Int
    /// The code segment's share: 0 when the target had the module already.
    public var codeBytesSent: Int
    public var memoryBytes: Int
    /// From the request to the commit.
    public var totalMilliseconds: Double
    /// From the process's last instruction at the source to its first at the target.
    public var downtimeMilliseconds: Double
    /// The process's epoch at the target.
    public var epoch: UInt64
    /// Who asked: `sender` (the source, or the guest itself) or `receiver` (`--pull`).
    public var initiative: String
    /// Where the time went, in milliseconds: `hold` (from the request to the process held at a
    /// safe point), `prepare` (capture, journal, layers packed), then the hand-over's steps
    /// `connect`, `offer` (the target checks the claim), `code`, `memory`, `state` and `commit`
    /// (the target takes the claim and starts the process).
    public var phases: [String: Double]
    /// Passes over memory: 1 when it all went while the process stood (stop-and-copy, weak).
    public var rounds: Int
    /// Memory pages (4 KiB) sent, over all rounds.
    public var pagesSent: Int
    /// Whether what was left to send at the stop fit the downtime asked for (always, when
    /// everything is sent at the stop).
    public var converged: Bool
    /// The share of its CPU time, in percent, taken from the process at the end to let the
    /// rounds converge (0: none).
    public var throttled: Int
    /// Post-copy: pages the process touched at the target before they came, which the target
    /// asked for (the rest were pushed).
    public var pagesOnDemand: Int
    /// Pre-copy and hybrid: how the pages written while it ran were found: `kernel`
    /// (userfaultfd's write-protection and `PAGEMAP_SCAN`) or `checksums` (where the kernel
    /// lacks them); absent for the other modes.
    public var tracking: String?

    enum CodingKeys: String, CodingKey {
        case process, mode, from, to, epoch, initiative, rounds, converged, throttled, tracking
        case phases = "phases_ms"
        case pagesSent = "pages_sent"
        case pagesOnDemand = "pages_on_demand"
        case bytesSent = "bytes_sent"
        case codeBytesSent = "code_bytes_sent"
        case memoryBytes = "memory_bytes"
        case totalMilliseconds = "total_ms"
        case downtimeMilliseconds = "downtime_ms"
    }
}

/// Why a process operation failed, in words for the person who asked.
public struct ProcessError: Error, Equatable, Sendable, CustomStringConvertible {
    public var description: String

    public init(_ description: String) { self.description = description }

    static func badName(_ name: String) -> ProcessError {
        ProcessError(
            "'\(name.prefix(70))' is not a process name: use 1 to 64 letters, digits, '.', '_' or '-'"
        )
    }

    static func unknown(_ name: String, node: String) -> ProcessError {
        ProcessError("no process '\(name)' on node \(node); 'ferry ps' lists where each one runs")
    }
}

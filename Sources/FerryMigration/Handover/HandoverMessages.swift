import FerryGuest

/// The source's first frame: what it wants to send, and the claim it holds the process under.
struct MoveOffer: Codable, Sendable {
    var spec: ProcessSpec
    /// The source node, and the lease of its claim on the process: the target checks at the
    /// endpoint daemon that this node holds the process under this lease at this epoch.
    var source: String
    var sourceLease: UInt64
    var epoch: UInt64
    var strong: Bool
    /// Pre-copy: memory comes as pages frames, while the process runs and at its stop, and the
    /// state says its size at the stop. (Absent in a stop-and-copy offer.)
    var preCopy: Bool?
    /// Post-copy (or hybrid): the process resumes at the target before its memory is all there;
    /// the pages that are not come after the commit, pushed or asked for. (Absent otherwise.)
    var postCopy: Bool?
    /// The digest of the module that ran (its movable form): a strong move resumes only there.
    var runningDigest: String
    var memoryBytes: Int
    var moves: Int
    var cpuMilliseconds: Double
    /// Connections the target must be able to open again, to the same addresses, before it
    /// takes the process.
    var connections: [ProcessServices.Connection]
    /// The cluster kv keys it used (bound by identifier: nothing of them moves).
    var kvKeys: [String]
    /// Its read-only layers, by identifier (fastened to their machine).
    var lowers: [LowerLayer]

    /// How it moves, in the words of `ferry migrate --mode`.
    var mode: MoveMode {
        switch (self.strong, self.preCopy == true, self.postCopy == true) {
        case (false, _, _): .weak
        case (true, true, true): .hybrid
        case (true, true, false): .preCopy
        case (true, false, true): .postCopy
        case (true, false, false): .stopAndCopy
        }
    }
}

/// The target's answer to an offer.
struct MoveAcceptance: Codable, Sendable {
    /// The target lacks the module: send it.
    var needCode: Bool
}

/// Everything but memory that the target needs before it can commit: the execution state
/// comes as a ``GuestSnapshot`` (memory left out), this beside it.
struct MoveState: Codable, Sendable {
    /// CRC-32C of the memory frame (pre-copy: each pages frame carries its own).
    var memoryChecksum: UInt32
    /// The memory's size at the stop (pre-copy).
    var memoryBytes: Int
    /// Post-copy: the byte ranges of memory not sent yet, which come after the commit.
    var missing: [Range<Int>]?
    /// The output the process has made (the tail of it), and its offset.
    var logBase: Int
    var log: [UInt8]
    /// Its writable layers, by value, by the index of their directory.
    var layers: [Int: PackedTree]
    /// Its mailbox (a strong move): messages not taken yet, and answers owed to calls that gave up.
    var mailbox: GuestMailbox.Carried?
}

/// The target committed: the process is its own now, at `epoch`.
struct MoveCommitted: Codable, Sendable {
    var epoch: UInt64
    /// How long after its first instruction there the target answered (subtracted from the
    /// downtime the source measures).
    var answeredAfterStartNanoseconds: Int64
}

/// A refusal, with the reason.
struct MoveRefusal: Codable, Sendable {
    var reason: String
}

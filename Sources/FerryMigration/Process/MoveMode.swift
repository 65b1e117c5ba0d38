/// How a process moves: what of it travels, and when.
public enum MoveMode: String, Codable, Sendable, CaseIterable {
    /// Code and data segment: it starts again at `ferry_arrive` with its memory.
    case weak
    /// Code, data and execution segment: it goes on at its next instruction.
    case strong
    /// Strong, named as live migration names it: the process stops at its next safe point, all
    /// of its memory and execution state go, and it resumes at the target. A strong move is one.
    case stopAndCopy = "stop-and-copy"
    /// Live: memory goes while the process runs, then in rounds what it wrote meanwhile, until
    /// the rest fits the downtime asked for; then it stops, and the rest goes with its state.
    case preCopy = "pre-copy"
    /// Live the other way round: the process stops, its state and the pages it needs first go,
    /// and it resumes at the target at once; the pages it touches there before they came are
    /// fetched on demand while the source pushes the rest. Each page crosses once.
    case postCopy = "post-copy"
    /// One pre-copy pass while the process runs, then post-copy of what it wrote meanwhile.
    case hybrid

    /// Whether the execution segment travels (the process goes on where it was).
    public var isStrong: Bool { self != .weak }

    /// Whether memory goes while the process still runs at the source.
    var copiesWhileRunning: Bool { self == .preCopy || self == .hybrid }

    /// Whether the process resumes at the target before all of its memory is there.
    var fetchesAfterResuming: Bool { self == .postCopy || self == .hybrid }
}

/// Pre-copy's limits: the downtime it aims for (it stops the process once what is left could go
/// within it at the bandwidth measured so far), the rounds after which it stops the process
/// anyway, and whether it may slow down a process whose writes outrun the link (auto-converge).
public struct MoveLimits: Codable, Sendable, Equatable {
    public var maxDowntimeMilliseconds: Double
    public var maxRounds: Int
    public var autoConverge: Bool

    public init(maxDowntimeMilliseconds: Double = 5, maxRounds: Int = 30, autoConverge: Bool = true) {
        self.maxDowntimeMilliseconds = maxDowntimeMilliseconds
        self.maxRounds = maxRounds
        self.autoConverge = autoConverge
    }
}

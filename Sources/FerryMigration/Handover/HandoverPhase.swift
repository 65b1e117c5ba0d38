#if canImport(Glibc)
import Glibc
#endif

/// The named points of a hand-over, on either side, where a test may kill the node
/// (`FERRY_CRASH_AT=source:memory-sent`, or `target:commit`...): the process must then run on
/// exactly one node, never two.
public enum HandoverPhase: String, CaseIterable, Sendable {
    /// The code segment went (or was not needed).
    case codeSent = "code-sent"
    /// Linear memory went.
    case memorySent = "memory-sent"
    /// The execution state (stack, globals) and resources went.
    case stateSent = "state-sent"
    /// The source asked for the commit / the target took the claim over.
    case commit
    /// The target answered committed, and the source lets go.
    case sourceRelease = "source-release"
    /// Post-copy: the process runs at the target, and some of its pages are still at the source
    /// (the first were pushed / came).
    case postCopy = "post-copy"

    /// Which side a crash point is on.
    public enum Side: String, Sendable {
        case source, target
    }

    /// Kills this process, as `kill -9` would, when `FERRY_CRASH_AT` names this side and phase.
    static func reached(_ phase: HandoverPhase, on side: Side) {
        guard let value = getenv("FERRY_CRASH_AT").map({ String(cString: $0) }),
            value == "\(side.rawValue):\(phase.rawValue)"
        else { return }
        kill(getpid(), SIGKILL)
    }
}

import FerryQuickAnswers

#if canImport(Glibc)
import Glibc
#endif

/// `ferry`: a small program, linked statically, that answers what scripts run by the thousand
/// (the top-level help, an endpoint lookup) before anything else starts, and hands every other
/// command to `ferry-runtime` beside it. The hand-off is an `execv`: the same process, PID and
/// arguments, so signals, exit statuses and `ps` see one `ferry`.
@main
struct Ferry {
    static func main() {
        if let answer = QuickAnswers.answer(Array(CommandLine.arguments.dropFirst())) {
            QuickAnswers.write(answer)
            exit(0)
        }
        let runtime = Self.runtimePath()
        execv(runtime, CommandLine.unsafeArgv)
        let reason = String(cString: strerror(errno))
        QuickAnswers.write(
            "ferry: cannot start \(runtime): \(reason). Every command but the help and lookups runs in "
                + "ferry-runtime, built beside ferry (swift build); install the two together.\n",
            to: STDERR_FILENO
        )
        exit(127)
    }

    /// `ferry-runtime` in the directory this program was started from (symbolic links resolved).
    static func runtimePath() -> String {
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX))
        let length = readlink("/proc/self/exe", &buffer, buffer.count)
        let path =
            length > 0
            ? String(decoding: buffer[..<length].map(UInt8.init(bitPattern:)), as: UTF8.self)
            : CommandLine.arguments[0]
        guard let slash = path.lastIndex(of: "/") else { return "ferry-runtime" }
        return path[...slash] + "ferry-runtime"
    }
}

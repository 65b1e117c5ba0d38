import FerryWire

#if canImport(Glibc)
import Glibc
#endif

/// The commands `ferry` answers before its argument parser and event loops start: the top-level
/// help and an endpoint lookup. A client command is a process a script may start thousands
/// of times, and the parser's reflection over the command tree (the runtime scanning 13,000
/// protocol conformances) costs more than the whole answer. Each answer is exactly what the
/// parser's command prints; anything else is left to the parser.
public enum QuickAnswers {
    /// The text to print for `arguments` (without the program's name), or nil to parse them.
    ///
    /// - Parameter credentials: where the command would find cluster credentials (a command here
    ///   has no `--data-dir`); with them it speaks TLS. Looked for only once the arguments are a
    ///   lookup's: no other command pays for it twice.
    public static func answer(
        _ arguments: [String],
        credentials: @autoclosure () -> String? = WireSecurity.directory(explicit: nil)
    ) -> String? {
        TopLevelHelp.answer(arguments) ?? QuickLookup.answer(arguments, credentials: credentials)
    }

    /// Writes `text` to standard output (or `descriptor`) as `print` does for the parser's
    /// commands: an output that cannot take it (full, closed) does not change the exit status.
    public static func write(_ text: String, to descriptor: CInt = STDOUT_FILENO) {
        var text = text
        text.withUTF8 { bytes in
            var offset = 0
            while offset < bytes.count {
                let written = Glibc.write(descriptor, bytes.baseAddress! + offset, bytes.count - offset)
                if written < 0 {
                    if errno == EINTR { continue }
                    return
                }
                offset += written
            }
        }
    }
}

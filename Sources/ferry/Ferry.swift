import FerryCommands

#if canImport(Glibc)
import Glibc
#endif

@main
struct Ferry {
    static func main() async {
        if let answer = QuickAnswers.answer(Array(CommandLine.arguments.dropFirst())) {
            // A closed output is the one failure left once the answer is known.
            exit(QuickAnswers.write(answer) ? 0 : 1)
        }
        FerryCommand.bootstrapLogging()
        await FerryCommand.main()
    }
}

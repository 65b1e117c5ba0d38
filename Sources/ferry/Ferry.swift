import FerryCommands

#if canImport(Glibc)
import Glibc
#endif

@main
struct Ferry {
    static func main() async {
        if let answer = QuickAnswers.answer(Array(CommandLine.arguments.dropFirst())) {
            QuickAnswers.write(answer)
            exit(0)
        }
        FerryCommand.bootstrapLogging()
        await FerryCommand.main()
    }
}

import FerryCommands

@main
struct Ferry {
    static func main() async {
        FerryCommand.bootstrapLogging()
        await FerryCommand.main()
    }
}

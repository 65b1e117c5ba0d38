import FerryCommands

/// `ferry-runtime`: every command of `ferry` (servers, nodes, clients), parsed and run. The small
/// `ferry` in front of it answers the help and endpoint lookups itself and hands it the rest.
@main
struct FerryRuntime {
    static func main() async {
        FerryCommand.bootstrapLogging()
        await FerryCommand.main()
    }
}

import ArgumentParser
import FerryMigration
import Foundation

/// `ferry send`: client–server with a process: a message to its mailbox, its answer printed.
struct SendCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "send",
        abstract: "Send a message to a process and print its answer (the next message it sends).",
        discussion: """
            The process takes it with ferry_receive and answers with ferry_send (Guests/messages.c \
            answers upper-cased). A call to a process that is moving waits for the move to end \
            and follows it to its new node: it is answered once, where the process runs.
            """
    )

    @OptionGroup var cluster: DaemonOption

    @Argument(help: "The process.")
    var name: String

    @Argument(help: "The message.")
    var message: String

    func run() async throws {
        let answer = try await sendMessage(Data(self.message.utf8), to: self.name, lookup: self.cluster.lookup)
        FileHandle.standardOutput.write(answer + Data("\n".utf8))
    }
}

/// Calls process `name` with `message`, following it from node to node, and returns its answer.
func sendMessage(_ message: Data, to name: String, lookup: ClusterLookup) async throws -> Data {
    var endpoint = try await lookup.holder(of: name)
    while true {
        let client = try await lookup.connect(endpoint)
        defer { Task { await client.close() } }
        switch try await client.request(.call(name, message: message), timeout: .seconds(60)) {
        case .answer(let answer):
            return answer
        case .moved(let node):
            endpoint = try await lookup.node(node)
        case let other:
            throw CommandFailure("node answered a call with \(other)")
        }
    }
}

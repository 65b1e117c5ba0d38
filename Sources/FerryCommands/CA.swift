import ArgumentParser
import FerryWire
import Foundation

/// `ferry ca init|issue`: the cluster's certificate authority. Every FerryWire connection between
/// Ferry processes is TLS 1.3 with a certificate from it at both ends.
struct CACommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ca",
        abstract: "Make the cluster's certificate authority, and certificates for its members.",
        discussion: """
            Credentials live in DATA/tls (ca.pem, cert.pem, key.pem; ca-key.pem where the authority \
            was made). 'ferry up' runs 'ca init' on first start. Other commands find them in their \
            --data-dir, else FERRY_DATA_DIR, else ~/.ferry.
            """,
        subcommands: [Init.self, Issue.self]
    )

    struct Init: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "init",
            abstract: "Make a cluster authority in DATA/tls, and a certificate for this machine."
        )

        @Option(help: "The data directory (default: FERRY_DATA_DIR, else ~/.ferry).")
        var dataDir: String?

        func run() throws {
            let directory = ClusterCredentials.directory(
                inDataDirectory: WireSecurity.dataDirectory(explicit: self.dataDir)
            )
            try ClusterAuthority.create(in: directory)
            printLine("cluster authority \(directory)/\(ClusterAuthority.certificateFile)")
            printLine("this machine      \(directory)/\(ClusterCredentials.certificateFile)")
        }
    }

    struct Issue: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "issue",
            abstract: "Sign a certificate for another member; copy OUT to its data directory as tls/."
        )

        @Argument(help: "The member's name, e.g. host-2.")
        var name: String

        @Option(help: "The data directory holding the authority (default: FERRY_DATA_DIR, else ~/.ferry).")
        var dataDir: String?

        @Option(
            help: ArgumentHelp(
                "Where to write ca.pem, cert.pem and key.pem (default: DATA/members/NAME).",
                valueName: "DIR"
            )
        )
        var out: String?

        func run() throws {
            let data = WireSecurity.dataDirectory(explicit: self.dataDir)
            let out = self.out ?? "\(data)/members/\(self.name)"
            try ClusterAuthority.load(from: ClusterCredentials.directory(inDataDirectory: data)).issue(
                self.name,
                into: out
            )
            printLine(
                "issued \(self.name): \(out)/\(ClusterCredentials.certificateFile) (copy \(out) to its data directory as tls/)"
            )
        }
    }
}

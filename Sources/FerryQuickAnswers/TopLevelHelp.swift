#if canImport(Glibc)
import Glibc
#endif

/// `ferry`, `ferry help`, `ferry -h`, `ferry --help`: the parser's help, byte for byte, where the
/// parser would lay it out for 80 columns (the output is not a terminal and COLUMNS is not set);
/// in a terminal the parser lays it out for the terminal's width. `QuickAnswerTests` compares
/// this text with the parser's, and shows the new text when a command or its abstract changed.
enum TopLevelHelp {
    static func answer(_ arguments: [String]) -> String? {
        guard arguments.count <= 1, ["help", "-h", "--help"].contains(arguments.first ?? "help"),
            isatty(STDOUT_FILENO) == 0,
            getenv("COLUMNS") == nil
        else { return nil }
        return Self.text
    }

    static let text = #"""
        OVERVIEW: A runtime for distributed processes: servers, nodes and the parts
        between them.

        USAGE: ferry <subcommand>

        OPTIONS:
          -h, --help              Show help information.

        SUBCOMMANDS:
          up                      Start a local Ferry node on loopback and print what
                                  runs where.
          serve                   Run a server in the foreground.
          control                 Send out-of-band requests to a server's control
                                  endpoint.
          endpointd               Run the endpoint daemon: services register under
                                  leases, clients look them up and watch them.
          endpoints               Register, look up, list and watch services at an
                                  endpoint daemon (or on etcd, with --registry).
          kv                      Get, put, delete, compare-and-set and list keys of a
                                  key-value service.
          superserver             Listen on every endpoint of a configuration and start
                                  each service when a client arrives.
          guest                   Run and inspect WebAssembly guests (Ferry's process
                                  virtual machine).
          switch                  Front many backends as one server (ferry switch
                                  serve, the default), and steer it.
          call                    Call a method of an object by name and print the
                                  result as JSON.
          objects                 List and move objects; generate stubs from WIT.
          node                    Run a node: it hosts processes, takes them from other
                                  nodes and sends them on.
          spawn                   Start a process on a node; prints its name.
          ps                      List the processes of every node: name, node, module,
                                  state, epoch, memory, CPU time, moves.
          wait                    Wait for a process to end and print its result as
                                  'ferry guest run' does.
          kill                    Stop a running process, or forget an ended one and
                                  free its name.
          logs                    Print a process's standard output and error (and its
                                  ferry.log lines), from whichever node it is on.
          send                    Send a message to a process and print its answer (the
                                  next message it sends).
          migrate                 Move a process to another node.
          eval                    Remote evaluation: run an export of a module on a
                                  node, against its resources, and print the result
                                  here.
          keys                    Make keys to sign code with.
          sign                    Sign a module (the tool-conventions signature
                                  section, as wasmsign2 writes it): it still runs
                                  anywhere.
          verify                  Check that a module is signed by a trusted key and
                                  unchanged since; exits 1 when not.
          data                    Node-local data sets, read by guests through
                                  ferry.data_read and never sent on by the node.
          learn                   Federated learning: the model goes to the nodes'
                                  data, only weights come back (FedAvg).
          edge                    A caching edge in front of an origin (ferry edge
                                  serve, the default); purge it, read its figures.
          redirector              Send clients to the best edge by DNS and by HTTP
                                  (ferry redirector serve, the default); explain a
                                  choice.
          container               Run native programs in containers: namespaces, an
                                  overlay root, cgroup limits; OCI bundles.
          fetch                   Fetch a page and the resources it names over parallel
                                  keep-alive connections.
          ca                      Make the cluster's certificate authority, and
                                  certificates for its members.

          See 'ferry help <subcommand>' for detailed help.

        """#
}

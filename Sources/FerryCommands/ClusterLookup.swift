import ArgumentParser
import FerryEndpoints
import FerryMigration
import FerryPosix
import FerryWire
import Foundation
import Logging

/// What the process commands find at the registry (the endpoint daemon, or etcd): nodes by name,
/// processes by the claim of the node that holds them.
struct ClusterLookup {
    let registry: RegistryAddress

    func client() async throws -> any Registry {
        do {
            return try await self.registry.connect(logger: Logger(label: "ferry.cluster"))
        } catch {
            throw CommandFailure(
                "cannot reach \(self.registry): \(NodeClient.Unreachable.short("\(error)")); is 'ferry up' (or 'ferry endpointd') running?"
            )
        }
    }

    /// The node registered as `name`.
    func node(_ name: String) async throws -> ServiceEndpoint {
        let client = try await self.client()
        defer { Task { await client.close() } }
        do {
            guard let endpoint = try await client.lookup("node:\(name)").first?.endpoints.first else {
                throw CommandFailure("no node named '\(name)'")
            }
            return endpoint
        } catch let error as ErrorMessage where error.code == .notFound {
            let known = ((try? await client.list(prefix: "node:")) ?? []).map { String($0.name.dropFirst(5)) }
            throw CommandFailure(
                "no node named '\(name)' is registered at \(self.registry)"
                    + (known.isEmpty ? "" : "; the nodes are: \(known.joined(separator: ", "))")
            )
        }
    }

    /// Every registered node, by name.
    func nodes() async throws -> [(name: String, endpoint: ServiceEndpoint)] {
        let client = try await self.client()
        defer { Task { await client.close() } }
        return try await client.list(prefix: "node:").compactMap { entry in
            entry.endpoints.first.map { (String(entry.name.dropFirst(5)), $0) }
        }
    }

    /// The node that holds process `name` now.
    func holder(of name: String) async throws -> ServiceEndpoint {
        let client = try await self.client()
        defer { Task { await client.close() } }
        do {
            guard let endpoint = try await client.lookup("process:\(name)").first?.endpoints.first else {
                throw CommandFailure("no process named '\(name)'")
            }
            return endpoint
        } catch let error as ErrorMessage where error.code == .notFound {
            throw CommandFailure("no process named '\(name)' in the cluster at \(self.registry); 'ferry ps' lists them")
        }
    }

    /// A connection to the node at `endpoint`, failing in one line when it cannot be made.
    func connect(_ endpoint: ServiceEndpoint) async throws -> NodeClient {
        do {
            return try await NodeClient.connect(to: endpoint)
        } catch let error as NodeClient.Unreachable {
            throw CommandFailure(error.description)
        }
    }
}

extension NodeClient.Unreachable {
    static func short(_ reason: String) -> String {
        if reason.contains("refused") { return "connection refused" }
        if reason.contains("timed out") { return "connection timed out" }
        return reason
    }
}

/// `--endpoints HOST:PORT`: where the endpoint daemon is (`ferry up` puts it on 7411); or
/// `--registry etcd://...`.
struct DaemonOption: ParsableArguments {
    @Option(name: .customLong("endpoints"), help: "The endpoint daemon, HOST:PORT.", transform: parseAddress)
    var daemon = ServiceEndpoint(host: "127.0.0.1", port: EndpointDaemon.defaultPort)

    @OptionGroup var etcd: RegistryOption

    @OptionGroup var data: DataDirectoryOption

    var registry: RegistryAddress { self.etcd.address(or: self.daemon) }

    var lookup: ClusterLookup { ClusterLookup(registry: self.registry) }
}

/// A flag's number of seconds as a duration: above 0 and at most a year; anything else is an
/// error, not a trap.
func parseSeconds(_ text: String) throws -> Duration {
    guard let value = Double(text), let duration = Duration(positiveSeconds: value) else {
        throw ValidationError(
            "a number of seconds above 0 and at most \(Int(Duration.longestSeconds)) (a year), got '\(text)'"
        )
    }
    return duration
}

/// A listening port: 0 (any free one) to 65535; anything else is an error, not a random port.
func parsePort(_ text: String) throws -> Int {
    guard let port = Int(text), (0...65535).contains(port) else {
        throw ValidationError("a port is a number from 0 to 65535 (0 picks a free one), got '\(text)'")
    }
    return port
}

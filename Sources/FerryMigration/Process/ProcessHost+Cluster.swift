import FerryEndpoints
import FerryGuest
import FerryWire
import Foundation

extension ProcessHost {
    /// For a receiver-initiated move: the node that holds `name` now, or, without a name, the
    /// most loaded other node (longest run queue) and one of its running processes.
    public func findProcessToPull(_ name: String?) async throws -> (ServiceEndpoint, String) {
        if let name {
            guard let holder = try await self.claims.holder(of: Self.claimName(name)),
                let endpoint = holder.endpoints.first
            else {
                throw ProcessError("no node runs a process named '\(name)'")
            }
            guard holder.metadata["node"] != self.node else { throw ProcessError("'\(name)' runs here already") }
            return (endpoint, name)
        }
        let nodes = try await self.claims.client().list(prefix: "node:")
            .filter { $0.name != "node:\(self.node)" }
            .sorted { (Int($0.metadata["runq"] ?? "") ?? 0) > (Int($1.metadata["runq"] ?? "") ?? 0) }
        for entry in nodes {
            guard let endpoint = entry.endpoints.first else { continue }
            let client = try await NodeClient.connect(to: endpoint)
            defer { Task { await client.close() } }
            guard case .processes(let processes) = try await client.request(.list),
                let process = processes.first(where: { $0.state == "running" || $0.state == "waiting" })
            else { continue }
            return (endpoint, process.name)
        }
        throw ProcessError("no other node runs a process this node could take")
    }

    /// Code on demand: asks the other nodes, one after another, for the module `digest`, and
    /// admits the first copy that arrives (its digest and signature checked like any code).
    /// Nil when no node holds it.
    func fetchCode(_ digest: ModuleDigest) async throws -> GuestModule? {
        let nodes = (try? await self.claims.client().list(prefix: "node:")) ?? []
        for entry in nodes where entry.name != "node:\(self.node)" {
            guard let endpoint = entry.endpoints.first,
                let client = try? await NodeClient.connect(to: endpoint, timeout: .seconds(2))
            else { continue }
            defer { Task { await client.close() } }
            guard case .code(let bytes)? = try? await client.request(.code(digest.hex), timeout: .seconds(30)) else {
                continue
            }
            let module = try self.code.admit([UInt8](bytes), expected: digest)
            self.logger.info(
                "fetched module \(digest.short) from \(entry.name.dropFirst(5)) (code on demand, \(bytes.count) bytes)"
            )
            return module
        }
        return nil
    }

    /// A process's resources and their bindings: the seed's table, for one process.
    public func resources(_ name: String) throws -> [ResourceBinding] {
        let process = try self.process(name)
        var bindings: [ResourceBinding] = []
        for directory in process.directories {
            if directory.upper != nil {
                bindings.append(
                    ResourceBinding(
                        kind: "file layer",
                        identifier: "\(directory.guestPath) (its writable layer)",
                        processBinding: "by value",
                        machineBinding: "unattached",
                        onMove: "copied to the target"
                    )
                )
            }
            for lower in directory.lowers {
                bindings.append(
                    ResourceBinding(
                        kind: "lower layer",
                        identifier: "\(directory.guestPath) = \(lower)",
                        processBinding: "by identifier",
                        machineBinding: "fastened",
                        onMove: "reached at the same path, or copied on first use"
                    )
                )
            }
        }
        for key in process.services.keys {
            bindings.append(
                ResourceBinding(
                    kind: "kv key",
                    identifier: key,
                    processBinding: "by identifier",
                    machineBinding: "unattached",
                    onMove: "found again at the endpoint daemon (service 'kv') by the node it moves to"
                )
            )
        }
        for connection in process.services.connections {
            bindings.append(
                ResourceBinding(
                    kind: "connection",
                    identifier: connection.address,
                    processBinding: "by identifier",
                    machineBinding: "fixed",
                    onMove: "opened again to the same address by the target, or the move is refused"
                )
            )
        }
        for (kind, identifier) in [
            ("node-local key space", "ferry.local_get/put"), ("clock", "ferry.clock_ms"),
            ("log", "ferry.log, stdout, stderr"),
        ] {
            bindings.append(
                ResourceBinding(
                    kind: kind,
                    identifier: identifier,
                    processBinding: "by type",
                    machineBinding: "fixed",
                    onMove: "re-bound to the target node's own"
                )
            )
        }
        return bindings
    }
}

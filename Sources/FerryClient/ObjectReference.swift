import FerryWire

/// How a group of replicas is called.
public enum ReplicationPolicy: String, Sendable, CaseIterable {
    /// Any one replica; another when it fails.
    case any
    /// The first replica that answers, in order: the primary while it lives.
    case primary
    /// Every replica; their answers are compared, and a difference is an error.
    case all
}

/// A name to call, with the client that binds it: what a generated stub holds. Calls go
/// wherever the object is active now; see ``ObjectClient``.
public struct ObjectReference: Sendable {
    enum Target: Sendable {
        case one(String)
        case group([String], ReplicationPolicy)
    }

    let client: ObjectClient
    let target: Target
    /// How long each call may take, retries included.
    public var deadline: Duration

    /// The name (a group's base name for groups).
    public var name: String {
        switch self.target {
        case .one(let name): name
        case .group(let names, _): names.first.map { String($0.prefix { $0 != "/" }) } ?? ""
        }
    }

    /// Calls `method` with positional arguments (what stubs do).
    public func invoke(_ method: String, _ arguments: [ObjectValue], idempotent: Bool) async throws -> ObjectValue {
        try await self.invoke(method, arguments: .list(arguments), idempotent: idempotent)
    }

    /// Calls `method` with arguments as a list or a record (what `ferry call` does).
    public func invoke(_ method: String, arguments: ObjectValue, idempotent: Bool) async throws -> ObjectValue {
        switch self.target {
        case .one(let name):
            return try await self.client.call(
                name,
                method: method,
                arguments: arguments,
                idempotent: idempotent,
                deadline: self.deadline
            )
        case .group(let names, let policy):
            return try await self.invokeGroup(names, policy, method, arguments, idempotent)
        }
    }

    private func invokeGroup(
        _ names: [String],
        _ policy: ReplicationPolicy,
        _ method: String,
        _ arguments: ObjectValue,
        _ idempotent: Bool
    ) async throws -> ObjectValue {
        switch policy {
        case .any, .primary:
            // `any` starts at a random replica, `primary` at the first; both go on down the list.
            let start = policy == .any ? Int.random(in: 0..<names.count) : 0
            var failures: [String: String] = [:]
            for offset in 0..<names.count {
                let name = names[(start + offset) % names.count]
                do {
                    return try await self.client.call(
                        name,
                        method: method,
                        arguments: arguments,
                        idempotent: idempotent,
                        deadline: self.deadline / names.count
                    )
                } catch let error as ErrorMessage
                    where error.code == .invalidArgument || error.code == .noSuchMethod
                {
                    throw error  // the same at every replica
                } catch let error as ObjectCallError {
                    // A call that may have run is not run at another replica too.
                    if case .outcomeUnknown = error { throw error }
                    failures[name] = "\(error)"
                } catch {
                    failures[name] = "\(error)"
                }
            }
            throw ObjectCallError.noNode(
                object: self.name,
                reason: "no replica answered: "
                    + failures.sorted { $0.key < $1.key }.map { "\($0.key): \($0.value)" }.joined(separator: "; ")
            )
        case .all:
            let answers = await withTaskGroup(of: (String, Result<ObjectValue, any Error>).self) { group in
                for name in names {
                    group.addTask {
                        do {
                            return (
                                name,
                                .success(
                                    try await self.client.call(
                                        name,
                                        method: method,
                                        arguments: arguments,
                                        idempotent: idempotent,
                                        deadline: self.deadline
                                    )
                                )
                            )
                        } catch {
                            return (name, .failure(error))
                        }
                    }
                }
                var answers: [String: Result<ObjectValue, any Error>] = [:]
                for await (name, answer) in group { answers[name] = answer }
                return answers
            }
            let values = answers.compactMapValues { try? $0.get() }
            guard values.count == names.count else {
                throw ObjectCallError.replicasFailed(
                    object: self.name,
                    method: method,
                    failures: answers.compactMapValues { answer in
                        if case .failure(let error) = answer { "\(error)" } else { nil }
                    }
                )
            }
            if Set(values.values).count == 1 { return values.first!.value }
            throw ObjectCallError.divergence(object: self.name, method: method, answers: values.mapValues { "\($0)" })
        }
    }
}

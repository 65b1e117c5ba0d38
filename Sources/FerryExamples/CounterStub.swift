// swift-format-ignore-file
// Generated from Interfaces/counter.wit by `ferry objects stubs`. Do not edit: change the .wit file and generate again.

import FerryClient
import FerryWire

/// Calls an object that implements the WIT interface `counter`, wherever it is active:
/// the reference binds by name, follows moves and retries as the method allows.
public struct CounterStub: Sendable {
    public let reference: ObjectReference

    public init(_ reference: ObjectReference) { self.reference = reference }

    public func increment(by: Int64) async throws -> Int64 {
        try Int64(objectValue: try await self.reference.invoke("increment", [by.objectValue], idempotent: false), name: "the result of increment")
    }

    public func get() async throws -> Int64 {
        try Int64(objectValue: try await self.reference.invoke("get", [], idempotent: true), name: "the result of get")
    }
}

// swift-format-ignore-file
// Generated from Interfaces/counter.wit by `ferry objects stubs`. Do not edit: change the .wit file and generate again.

import FerryObjects
import FerryWire

/// The WIT interface `counter`, as servants check calls against it.
public enum CounterInterface {
    public static let definition = try! ObjectInterface(
        wit: #"""
        // The counter of the README and of `ferry up`: a native Swift object (`counter`) and a wasm
        // guest (`wasm-counter`, Guests/counter_object.c) implement it; Swift callers use the stub
        // generated from it (`CounterStub`).
        package ferry:examples;

        interface counter {
            /// Adds `by` and returns the new value.
            increment: func(by: s64) -> s64;
            /// The value now. @idempotent
            get: func() -> s64;
        }

        """#
    )
}

/// An object that implements `counter`. Host it in an `ObjectAdapter`; its `invoke`
/// is generated below.
public protocol CounterObject: ObjectServant {
    func increment(by: Int64) async throws -> Int64
    func get() async throws -> Int64
}

extension CounterObject {
    public func invoke(_ method: String, arguments: ObjectValue) async throws -> ObjectValue {
        let (_, values) = try CounterInterface.definition.arguments(of: method, from: arguments)
        switch method {
        case "increment":
            return try await self.increment(by: try Int64(objectValue: values[0], name: "by")).objectValue
        case "get":
            return try await self.get().objectValue
        default:
            return .null  // unreachable: arguments(of:from:) refused the method
        }
    }
}

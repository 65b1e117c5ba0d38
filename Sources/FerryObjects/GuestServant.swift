import FerryGuest
import FerryWire
import NIOConcurrencyHelpers
import WasmKit

/// A wasm guest as an object: each method of its WIT interface is an export of the module with
/// the same name, taking and returning numbers. Its state is its linear memory.
public final class GuestServant: ObjectServant, @unchecked Sendable {
    private let instance: GuestInstance
    private let interface: ObjectInterface
    // A guest instance runs one call at a time, whatever the adapter's threading policy.
    private let lock = NIOLock()

    init(module: GuestModule, interface: ObjectInterface, limits: GuestLimits, state: [UInt8]?) throws {
        self.instance = try GuestInstance(module: module, limits: limits)
        self.interface = interface
        if let state { try self.instance.restoreData(state) }
    }

    /// The object type whose objects are instances of `module`.
    ///
    /// - Throws: when the module does not implement `interface` (a missing export, other
    ///   parameters) or the interface uses types a guest cannot take: the module is refused
    ///   before any object of it runs.
    public static func type(
        name: String,
        module: GuestModule,
        interface: ObjectInterface,
        limits: GuestLimits = GuestLimits(maxMemoryBytes: 16 << 20, deadline: .seconds(2))
    ) throws -> ObjectType {
        let probe = try GuestInstance(module: module, limits: limits)
        for method in interface.methods {
            let wanted = try method.parameters.map { try Self.wasmType($0.type, in: method) }
            if let result = method.result { _ = try Self.wasmType(result, in: method) }
            let exported: [WasmKit.ValueType]
            do {
                exported = try probe.parameters(of: method.name)
            } catch {
                throw ErrorMessage(
                    code: .invalidArgument,
                    message: "the module of '\(name)' does not implement '\(interface.name)': \(error)"
                )
            }
            guard exported == wanted else {
                throw ErrorMessage(
                    code: .invalidArgument,
                    message:
                        "the module of '\(name)' exports \(method.name) taking (\(exported.map { "\($0)" }.joined(separator: ", "))), but '\(interface.name)' says (\(wanted.map { "\($0)" }.joined(separator: ", ")))"
                )
            }
        }
        return ObjectType(name: name) { _, state in
            try GuestServant(module: module, interface: interface, limits: limits, state: state)
        }
    }

    public func invoke(_ method: String, arguments: ObjectValue) async throws -> ObjectValue {
        let (signature, values) = try self.interface.arguments(of: method, from: arguments)
        let wasmArguments = try zip(signature.parameters, values).map { parameter, value in
            try Self.wasmValue(value, as: parameter.type, name: parameter.name)
        }
        let results: [Value]
        do {
            results = try self.lock.withLock { try self.instance.invoke(method, wasmArguments) }
        } catch let stop as GuestStop {
            throw ErrorMessage(code: .internalError, message: "the guest was stopped in \(method): \(stop)")
        }
        guard let resultType = signature.result else { return .null }
        guard let result = results.first else {
            throw ErrorMessage(code: .internalError, message: "the guest's \(method) returned nothing")
        }
        return Self.objectValue(result, as: resultType)
    }

    public func state() async throws -> [UInt8] {
        try self.lock.withLock { try self.instance.saveData() }
    }

    private static func wasmType(
        _ type: ObjectInterface.ValueType,
        in method: ObjectInterface.Method
    ) throws
        -> WasmKit.ValueType
    {
        switch type {
        case .bool, .s32, .u32: return .i32
        case .s64, .u64: return .i64
        case .f64: return .f64
        case .string, .list:
            throw ErrorMessage(
                code: .invalidArgument,
                message: "\(method.name) uses \(type): a guest object's methods take and return numbers and bools only"
            )
        }
    }

    private static func wasmValue(
        _ value: ObjectValue,
        as type: ObjectInterface.ValueType,
        name: String
    ) throws -> Value {
        switch type {
        case .bool: return .i32(try Bool(objectValue: value, name: name) ? 1 : 0)
        case .s32: return .i32(UInt32(bitPattern: try Int32(objectValue: value, name: name)))
        case .u32: return .i32(try UInt32(objectValue: value, name: name))
        case .s64: return .i64(UInt64(bitPattern: try Int64(objectValue: value, name: name)))
        case .u64: return .i64(try UInt64(objectValue: value, name: name))
        case .f64: return .f64(try Double(objectValue: value, name: name).bitPattern)
        case .string, .list: throw objectTypeMismatch(name, expected: "a number", got: value)
        }
    }

    private static func objectValue(_ value: Value, as type: ObjectInterface.ValueType) -> ObjectValue {
        switch (type, value) {
        case (.bool, .i32(let raw)): .bool(raw != 0)
        case (.s32, .i32(let raw)): .int(Int64(Int32(bitPattern: raw)))
        case (.u32, .i32(let raw)): .int(Int64(raw))
        case (.s64, .i64(let raw)): .int(Int64(bitPattern: raw))
        case (.u64, .i64(let raw)): .int(Int64(bitPattern: raw))
        case (.f64, .f64(let raw)): .double(Double(bitPattern: raw))
        default: .null
        }
    }
}

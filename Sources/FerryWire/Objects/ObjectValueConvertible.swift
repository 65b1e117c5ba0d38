/// A Swift type that travels as an ``ObjectValue``: what generated stubs and servants convert
/// arguments and results with.
public protocol ObjectValueConvertible: Sendable {
    /// Reads the value; `name` says which argument or result it is, for the error.
    init(objectValue: ObjectValue, name: String) throws
    var objectValue: ObjectValue { get }
}

/// A value of the wrong type for an argument or result.
public func objectTypeMismatch(_ name: String, expected: String, got value: ObjectValue) -> ErrorMessage {
    let shown: String
    switch value {
    case .int(let number): shown = "the integer \(number)"
    case .string(let text): shown = "the string \"\(text.prefix(40))\""
    default: shown = "a \(value.typeName)"
    }
    return ErrorMessage(code: .invalidArgument, message: "'\(name)' must be \(expected), got \(shown)")
}

extension Bool: ObjectValueConvertible {
    public init(objectValue: ObjectValue, name: String) throws {
        guard case .bool(let value) = objectValue else {
            throw objectTypeMismatch(name, expected: "a bool", got: objectValue)
        }
        self = value
    }
    public var objectValue: ObjectValue { .bool(self) }
}

extension String: ObjectValueConvertible {
    public init(objectValue: ObjectValue, name: String) throws {
        guard case .string(let value) = objectValue else {
            throw objectTypeMismatch(name, expected: "a string", got: objectValue)
        }
        self = value
    }
    public var objectValue: ObjectValue { .string(self) }
}

extension Double: ObjectValueConvertible {
    public init(objectValue: ObjectValue, name: String) throws {
        switch objectValue {
        case .double(let value): self = value
        case .int(let value): self = Double(value)
        default: throw objectTypeMismatch(name, expected: "a number", got: objectValue)
        }
    }
    public var objectValue: ObjectValue { .double(self) }
}

/// Integers check their range: 300 is not a `u8`.
extension ObjectValueConvertible where Self: FixedWidthInteger {
    public init(objectValue: ObjectValue, name: String) throws {
        guard case .int(let value) = objectValue else {
            throw objectTypeMismatch(name, expected: "an integer", got: objectValue)
        }
        guard let exact = Self(exactly: value) else {
            throw objectTypeMismatch(name, expected: "an integer in \(Self.min)...\(Self.max)", got: objectValue)
        }
        self = exact
    }
    public var objectValue: ObjectValue { .int(Int64(truncatingIfNeeded: self)) }
}

extension Int32: ObjectValueConvertible {}
extension Int64: ObjectValueConvertible {}
extension UInt32: ObjectValueConvertible {}
extension UInt8: ObjectValueConvertible {}
extension Int: ObjectValueConvertible {}

extension UInt64: ObjectValueConvertible {
    // Above Int64.max a u64 travels as the same 64 bits, read back as such.
    public init(objectValue: ObjectValue, name: String) throws {
        guard case .int(let value) = objectValue else {
            throw objectTypeMismatch(name, expected: "an integer", got: objectValue)
        }
        self = UInt64(bitPattern: value)
    }
    public var objectValue: ObjectValue { .int(Int64(bitPattern: self)) }
}

extension Array: ObjectValueConvertible where Element: ObjectValueConvertible {
    public init(objectValue: ObjectValue, name: String) throws {
        switch objectValue {
        case .list(let values):
            self = try values.enumerated().map { try Element(objectValue: $1, name: "\(name)[\($0)]") }
        case .bytes(let bytes) where Element.self == UInt8.self:
            self = bytes as! [Element]
        default:
            throw objectTypeMismatch(name, expected: "a list", got: objectValue)
        }
    }
    public var objectValue: ObjectValue {
        if let bytes = self as? [UInt8] { return .bytes(bytes) }
        return .list(self.map(\.objectValue))
    }
}

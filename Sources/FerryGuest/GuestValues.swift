import WasmKit

/// A call's arguments and results as people write and read them: `42`, `-1`, `3.5`.
public enum GuestValues {
    /// Reads `texts` as values of `types`, the parameters of `export`.
    ///
    /// - Throws: ``GuestError/badArguments(export:reason:)`` naming the argument that does not fit.
    public static func parse(_ texts: [String], as types: [ValueType], export: String) throws -> [Value] {
        guard texts.count == types.count else {
            throw GuestError.badArguments(
                export: export,
                reason:
                    "it takes \(types.count) argument(s) (\(types.map { "\($0)" }.joined(separator: ", "))), got \(texts.count)"
            )
        }
        return try zip(texts, types).map { text, type in
            let value: Value?
            switch type {
            case .i32: value = Int32(text).map { .i32(UInt32(bitPattern: $0)) } ?? UInt32(text).map { .i32($0) }
            case .i64: value = Int64(text).map { .i64(UInt64(bitPattern: $0)) } ?? UInt64(text).map { .i64($0) }
            case .f32: value = Float(text).map { .f32($0.bitPattern) }
            case .f64: value = Double(text).map { .f64($0.bitPattern) }
            default: value = nil
            }
            guard let value else {
                throw GuestError.badArguments(export: export, reason: "'\(text)' is not a \(type)")
            }
            return value
        }
    }

    /// One value as text: integers signed, floats as Swift prints them.
    public static func describe(_ value: Value) -> String {
        switch value {
        case .i32(let bits): String(Int32(bitPattern: bits))
        case .i64(let bits): String(Int64(bitPattern: bits))
        case .f32(let bits): String(Float(bitPattern: bits))
        case .f64(let bits): String(Double(bitPattern: bits))
        default: "\(value)"
        }
    }

    /// Bytes as lowercase hex (a result read from guest memory).
    public static func hex(_ bytes: [UInt8]) -> String {
        // Straight into the string's storage: `String(format:)` per byte took a fifth of the
        // CPU of a federated-learning round, whose answers are kilobytes of weights.
        let digits = Array("0123456789abcdef".utf8)
        return String(unsafeUninitializedCapacity: bytes.count * 2) { buffer in
            for (index, byte) in bytes.enumerated() {
                buffer[2 * index] = digits[Int(byte >> 4)]
                buffer[2 * index + 1] = digits[Int(byte & 0x0f)]
            }
            return bytes.count * 2
        }
    }

    /// Hex (either case) back to bytes; nil when it is not whole pairs of hex digits.
    public static func bytes(hex: String) -> [UInt8]? {
        func value(_ digit: UInt8) -> UInt8? {
            switch digit {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): digit - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): digit - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): digit - UInt8(ascii: "A") + 10
            default: nil
            }
        }
        let digits = Array(hex.utf8)
        guard digits.count % 2 == 0 else { return nil }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(digits.count / 2)
        for index in stride(from: 0, to: digits.count, by: 2) {
            guard let high = value(digits[index]), let low = value(digits[index + 1]) else { return nil }
            bytes.append(high << 4 | low)
        }
        return bytes
    }
}

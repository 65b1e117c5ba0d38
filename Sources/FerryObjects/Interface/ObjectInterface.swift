import FerryWire

/// An object's interface, read from WIT, the WebAssembly component model's interface language:
/// the one description that Swift objects and wasm guests both implement, that stubs are
/// generated from, and that a servant checks arguments against.
///
/// The subset read here: one `interface NAME { ... }` of functions
/// `NAME: func(PARAM: TYPE, ...) -> TYPE;` over `bool`, `s32`, `s64`, `u32`, `u64`, `f64`,
/// `string` and `list<T>`, with `//` and `///` comments and an optional `package` line. A doc
/// comment containing `@idempotent` marks a method that may safely run more than once, which
/// lets clients retry it anywhere.
public struct ObjectInterface: Sendable, Hashable {
    public indirect enum ValueType: Sendable, Hashable, CustomStringConvertible {
        case bool, s32, s64, u32, u64, f64, string
        case list(ValueType)

        public var description: String {
            switch self {
            case .bool: "bool"
            case .s32: "s32"
            case .s64: "s64"
            case .u32: "u32"
            case .u64: "u64"
            case .f64: "f64"
            case .string: "string"
            case .list(let element): "list<\(element)>"
            }
        }
    }

    public struct Parameter: Sendable, Hashable {
        public var name: String
        public var type: ValueType
    }

    public struct Method: Sendable, Hashable {
        public var name: String
        public var parameters: [Parameter]
        public var result: ValueType?
        public var idempotent: Bool
    }

    public var name: String
    public var methods: [Method]
    private var byName: [String: Int]

    public init(name: String, methods: [Method]) {
        self.name = name
        self.methods = methods
        self.byName = Dictionary(methods.enumerated().map { ($1.name, $0) }, uniquingKeysWith: { first, _ in first })
    }

    public func method(_ name: String) -> Method? { self.byName[name].map { self.methods[$0] } }

    /// The arguments of a call to `method` in parameter order: from a list (positional, as stubs
    /// send them) or a record (by name, as `ferry call` sends them).
    ///
    /// - Throws: an ``ErrorMessage`` — `noSuchMethod`, or `invalidArgument` naming what is
    ///   missing, extra or of the wrong shape. Types are checked when each value is converted.
    public func arguments(of methodName: String, from value: ObjectValue) throws -> (Method, [ObjectValue]) {
        guard let method = self.method(methodName) else {
            throw ErrorMessage(
                code: .noSuchMethod,
                message:
                    "interface '\(self.name)' has no method '\(methodName)'; it has \(self.methods.map(\.name).joined(separator: ", "))"
            )
        }
        let signature = "\(method.name)(\(method.parameters.map { "\($0.name): \($0.type)" }.joined(separator: ", ")))"
        switch value {
        case .list(let values):
            guard values.count == method.parameters.count else {
                throw ErrorMessage(
                    code: .invalidArgument,
                    message: "\(signature) takes \(method.parameters.count) argument(s), got \(values.count)"
                )
            }
            return (method, values)
        case .record(let fields):
            let given = Dictionary(fields.map { ($0.name, $0.value) }, uniquingKeysWith: { first, _ in first })
            if let unknown = fields.first(where: { field in !method.parameters.contains { $0.name == field.name } }) {
                throw ErrorMessage(
                    code: .invalidArgument,
                    message: "\(signature) has no parameter '\(unknown.name)'"
                )
            }
            return (
                method,
                try method.parameters.map { parameter in
                    guard let value = given[parameter.name] else {
                        throw ErrorMessage(
                            code: .invalidArgument,
                            message: "\(signature) needs argument '\(parameter.name)'"
                        )
                    }
                    return value
                }
            )
        case .null where method.parameters.isEmpty:
            return (method, [])
        default:
            throw ErrorMessage(
                code: .invalidArgument,
                message: "the arguments of \(signature) must be a list or a record, got a \(value.typeName)"
            )
        }
    }
}

/// Why a WIT text was refused: the line and what was expected there.
public struct InterfaceParseError: Error, Hashable, Sendable, CustomStringConvertible {
    public var line: Int
    public var message: String
    public var description: String { "line \(self.line): \(self.message)" }
}

extension ObjectInterface {
    /// Parses the one interface in `text`.
    public init(wit text: String) throws {
        var scanner = WITScanner(text)
        if scanner.peek() == "package" {
            while let token = scanner.next(), token != ";" {}
        }
        try scanner.expect("interface")
        let name = try scanner.identifier("an interface name")
        try scanner.expect("{")
        scanner.pendingDocs = ""
        var methods: [Method] = []
        while scanner.peek() != "}" {
            guard scanner.peek() != nil else { throw scanner.error("the interface is not closed with '}'") }
            let methodName = try scanner.identifier("a method name")
            // Docs are gathered as tokens are read: the method's own come with its name.
            let idempotent = scanner.pendingDocs.contains("@idempotent")
            try scanner.expect(":")
            try scanner.expect("func")
            try scanner.expect("(")
            var parameters: [Parameter] = []
            while scanner.peek() != ")" {
                if !parameters.isEmpty { try scanner.expect(",") }
                let parameterName = try scanner.identifier("a parameter name")
                try scanner.expect(":")
                parameters.append(Parameter(name: parameterName, type: try scanner.type()))
            }
            try scanner.expect(")")
            var result: ValueType?
            if scanner.peek() == "->" {
                _ = scanner.next()
                result = try scanner.type()
            }
            try scanner.expect(";")
            guard !methods.contains(where: { $0.name == methodName }) else {
                throw scanner.error("method '\(methodName)' is declared twice")
            }
            methods.append(Method(name: methodName, parameters: parameters, result: result, idempotent: idempotent))
            scanner.pendingDocs = ""
        }
        try scanner.expect("}")
        self.init(name: name, methods: methods)
    }
}

/// Splits WIT into tokens: identifiers (with `-`), punctuation and `->`; gathers `///` docs.
struct WITScanner {
    private let characters: [Character]
    private var index = 0
    private var line = 1
    /// The doc comments read since the last method.
    var pendingDocs = ""

    init(_ text: String) { self.characters = Array(text) }

    mutating func peek() -> String? {
        var copy = self
        return copy.next()
    }

    mutating func next() -> String? {
        while self.index < self.characters.count {
            let character = self.characters[self.index]
            if character == "\n" { self.line += 1 }
            if character.isWhitespace {
                self.index += 1
            } else if character == "/", self.index + 1 < self.characters.count, self.characters[self.index + 1] == "/" {
                let start = self.index
                while self.index < self.characters.count, self.characters[self.index] != "\n" { self.index += 1 }
                let comment = String(self.characters[start..<self.index])
                if comment.hasPrefix("///") { self.pendingDocs += comment }
            } else {
                break
            }
        }
        guard self.index < self.characters.count else { return nil }
        let start = self.index
        let character = self.characters[self.index]
        if character.isLetter || character == "%" {
            while self.index < self.characters.count,
                self.characters[self.index].isLetter || self.characters[self.index].isNumber
                    || self.characters[self.index] == "-" || self.characters[self.index] == "%"
            {
                self.index += 1
            }
        } else if character == "-", self.index + 1 < self.characters.count, self.characters[self.index + 1] == ">" {
            self.index += 2
        } else {
            self.index += 1
        }
        return String(self.characters[start..<self.index])
    }

    mutating func expect(_ token: String) throws {
        let got = self.next()
        guard got == token else { throw self.error("expected '\(token)', found \(got.map { "'\($0)'" } ?? "the end")") }
    }

    mutating func identifier(_ what: String) throws -> String {
        guard let token = self.next(), let first = token.first, first.isLetter || first == "%" else {
            throw self.error("expected \(what)")
        }
        return token.hasPrefix("%") ? String(token.dropFirst()) : token
    }

    mutating func type() throws -> ObjectInterface.ValueType {
        let token = try self.identifier("a type")
        switch token {
        case "bool": return .bool
        case "s32": return .s32
        case "s64": return .s64
        case "u32": return .u32
        case "u64": return .u64
        case "f64": return .f64
        case "string": return .string
        case "list":
            try self.expect("<")
            let element = try self.type()
            try self.expect(">")
            return .list(element)
        default:
            throw self.error(
                "type '\(token)' is not supported; use bool, s32, s64, u32, u64, f64, string or list<T>"
            )
        }
    }

    func error(_ message: String) -> InterfaceParseError { InterfaceParseError(line: self.line, message: message) }
}

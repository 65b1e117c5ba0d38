/// Writes Swift code from an ``ObjectInterface``: for the server, a protocol an object
/// implements (its `invoke` is generated: arguments read, type-checked and dispatched); for
/// clients, a stub whose methods are ordinary Swift calls. Nobody writes either by hand:
/// `ferry objects stubs FILE.wit` writes them.
public enum StubGenerator {
    /// The server side: `protocol <Name>Object` and `enum <Name>Interface`.
    public static func server(wit: String, source: String, imports: [String] = ["FerryWire"]) throws -> String {
        let interface = try ObjectInterface(wit: wit)
        let typeName = self.typeName(interface.name)
        var out = self.header(source: source, imports: imports)
        out += """
            /// The WIT interface `\(interface.name)`, as servants check calls against it.
            public enum \(typeName)Interface {
                public static let definition = try! ObjectInterface(
                    wit: #\"\"\"
            \(wit.split(separator: "\n", omittingEmptySubsequences: false).map { "        " + $0 }.joined(separator: "\n").trimmingTrailingSpaces())
                    \"\"\"#
                )
            }

            /// An object that implements `\(interface.name)`. Host it in an `ObjectAdapter`; its `invoke`
            /// is generated below.
            public protocol \(typeName)Object: ObjectServant {

            """
        for method in interface.methods {
            out += "    func \(self.signature(method)) async throws\(self.resultClause(method))\n"
        }
        out += """
            }

            extension \(typeName)Object {
                public func invoke(_ method: String, arguments: ObjectValue) async throws -> ObjectValue {
                    let (_, values) = try \(typeName)Interface.definition.arguments(of: method, from: arguments)
                    switch method {

            """
        for method in interface.methods {
            let arguments = method.parameters.enumerated().map { index, parameter in
                "\(self.swiftName(parameter.name)): try \(self.swiftType(parameter.type))(objectValue: values[\(index)], name: \"\(parameter.name)\")"
            }
            let call = "try await self.\(self.swiftName(method.name))(\(arguments.joined(separator: ", ")))"
            out += "        case \"\(method.name)\":\n"
            if method.result == nil {
                out += "            \(call)\n            return .null\n"
            } else {
                out += "            return \(call).objectValue\n"
            }
        }
        out += """
                    default:
                        return .null  // unreachable: arguments(of:from:) refused the method
                    }
                }
            }

            """
        return out
    }

    /// The client side: `struct <Name>Stub`, over an `ObjectReference` from FerryClient.
    public static func client(wit: String, source: String, imports: [String] = ["FerryWire"]) throws -> String {
        let interface = try ObjectInterface(wit: wit)
        let typeName = self.typeName(interface.name)
        var out = self.header(source: source, imports: imports)
        out += """
            /// Calls an object that implements the WIT interface `\(interface.name)`, wherever it is active:
            /// the reference binds by name, follows moves and retries as the method allows.
            public struct \(typeName)Stub: Sendable {
                public let reference: ObjectReference

                public init(_ reference: ObjectReference) { self.reference = reference }

            """
        for method in interface.methods {
            let arguments = method.parameters.map { "\(self.swiftName($0.name)).objectValue" }
            let invoke =
                "try await self.reference.invoke(\"\(method.name)\", [\(arguments.joined(separator: ", "))], idempotent: \(method.idempotent))"
            out += "\n    public func \(self.signature(method)) async throws\(self.resultClause(method)) {\n"
            if let result = method.result {
                out +=
                    "        try \(self.swiftType(result))(objectValue: \(invoke), name: \"the result of \(method.name)\")\n"
            } else {
                out += "        _ = \(invoke)\n"
            }
            out += "    }\n"
        }
        out += "}\n"
        return out
    }

    private static func header(source: String, imports: [String]) -> String {
        // The formatter leaves generated files alone, so that they stay exactly what the generator wrote.
        "// swift-format-ignore-file\n"
            + "// Generated from \(source) by `ferry objects stubs`. Do not edit: change the .wit file and generate again.\n\n"
            + imports.map { "import \($0)\n" }.joined() + "\n"
    }

    private static func signature(_ method: ObjectInterface.Method) -> String {
        let parameters = method.parameters.map { "\(self.swiftName($0.name)): \(self.swiftType($0.type))" }
        return "\(self.swiftName(method.name))(\(parameters.joined(separator: ", ")))"
    }

    private static func resultClause(_ method: ObjectInterface.Method) -> String {
        method.result.map { " -> \(self.swiftType($0))" } ?? ""
    }

    static func swiftType(_ type: ObjectInterface.ValueType) -> String {
        switch type {
        case .bool: "Bool"
        case .s32: "Int32"
        case .s64: "Int64"
        case .u32: "UInt32"
        case .u64: "UInt64"
        case .f64: "Double"
        case .string: "String"
        case .list(let element): "[\(self.swiftType(element))]"
        }
    }

    /// WIT's kebab-case as Swift's lowerCamelCase.
    static func swiftName(_ name: String) -> String {
        let parts = name.split(separator: "-")
        return (parts.first.map(String.init) ?? "")
            + parts.dropFirst().map { $0.prefix(1).uppercased() + $0.dropFirst() }.joined()
    }

    static func typeName(_ name: String) -> String {
        let camel = self.swiftName(name)
        return camel.prefix(1).uppercased() + camel.dropFirst()
    }
}

extension String {
    fileprivate func trimmingTrailingSpaces() -> String {
        self.split(separator: "\n", omittingEmptySubsequences: false).map { line in
            var line = line
            while line.last == " " { line = line.dropLast() }
            return String(line)
        }.joined(separator: "\n")
    }
}

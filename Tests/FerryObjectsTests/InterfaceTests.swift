import FerryObjects
import FerryWire
import Foundation
import Testing

@Suite struct InterfaceTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()

    static func read(_ path: String) throws -> String {
        String(decoding: try Data(contentsOf: Self.root.appendingPathComponent(path)), as: UTF8.self)
    }

    @Test func theCounterInterfaceReadsWithItsMethodsAndIdempotence() throws {
        let interface = try ObjectInterface(wit: try Self.read("Interfaces/counter.wit"))
        #expect(interface.name == "counter")
        #expect(interface.methods.map(\.name) == ["increment", "get"])
        #expect(interface.method("increment")?.parameters.map(\.name) == ["by"])
        #expect(interface.method("increment")?.result == .s64)
        #expect(interface.method("increment")?.idempotent == false)
        #expect(interface.method("get")?.idempotent == true)
    }

    /// The generated stubs in the tree are exactly what the generator makes of the .wit file, so
    /// nobody edits them by hand and they never lag the interface.
    @Test func theCommittedStubsAreWhatTheGeneratorWrites() throws {
        let wit = try Self.read("Interfaces/counter.wit")
        let server = try StubGenerator.server(
            wit: wit,
            source: "Interfaces/counter.wit",
            imports: ["FerryObjects", "FerryWire"]
        )
        let client = try StubGenerator.client(
            wit: wit,
            source: "Interfaces/counter.wit",
            imports: ["FerryClient", "FerryWire"]
        )
        let regenerate =
            "swift run ferry objects stubs Interfaces/counter.wit --server Sources/FerryExamples/CounterObject.swift --client Sources/FerryExamples/CounterStub.swift --server-import FerryObjects --server-import FerryWire --client-import FerryClient --client-import FerryWire"
        #expect(try Self.read("Sources/FerryExamples/CounterObject.swift") == server, "run: \(regenerate)")
        #expect(try Self.read("Sources/FerryExamples/CounterStub.swift") == client, "run: \(regenerate)")
    }

    @Test func argumentsComeByPositionOrByName() throws {
        let interface = try ObjectInterface(wit: "interface t { f: func(a: s32, b-c: string) -> bool; }")
        #expect(try interface.arguments(of: "f", from: .list([.int(1), .string("x")])).1 == [.int(1), .string("x")])
        let named = ObjectValue.record([ObjectField("b-c", .string("x")), ObjectField("a", .int(1))])
        #expect(try interface.arguments(of: "f", from: named).1 == [.int(1), .string("x")])
    }

    @Test(arguments: [
        (ObjectValue.list([.int(1)]), "takes 2 argument(s), got 1"),
        (.record([ObjectField("a", .int(1))]), "needs argument 'b-c'"),
        (
            .record([ObjectField("a", .int(1)), ObjectField("b-c", .string("")), ObjectField("z", .null)]),
            "no parameter 'z'"
        ),
        (.string("x"), "must be a list or a record"),
    ])
    func wrongArgumentsAreRefusedWithTheSignature(_ arguments: ObjectValue, _ reason: String) throws {
        let interface = try ObjectInterface(wit: "interface t { f: func(a: s32, b-c: string) -> bool; }")
        #expect {
            try interface.arguments(of: "f", from: arguments)
        } throws: { error in
            (error as? ErrorMessage)?.code == .invalidArgument && "\(error)".contains(reason)
                && "\(error)".contains("f(a: s32, b-c: string)")
        }
        #expect {
            try interface.arguments(of: "g", from: arguments)
        } throws: { error in
            (error as? ErrorMessage)?.code == .noSuchMethod && "\(error)".contains("it has f")
        }
    }

    @Test(arguments: [
        ("interface t { f: func(a: tuple<s32>); }", "line 1: type 'tuple' is not supported"),
        ("interface t {\n f: func(a: s32)\n}", "line 3: expected ';'"),
        ("interface t { f: func(); f: func(); }", "declared twice"),
        ("world w {}", "expected 'interface'"),
        ("interface t { f: func(); ", "not closed"),
    ])
    func badWITIsRefusedWithTheLine(_ text: String, _ message: String) {
        #expect {
            try ObjectInterface(wit: text)
        } throws: { error in
            "\(error)".contains(message)
        }
    }
}

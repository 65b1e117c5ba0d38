import FerryObjects
import FerryWire
import FuzzDriver

/// One input as a WIT file, as `ferry stubs` and an object server read one: parsed into an
/// interface and, when it parses, its stubs generated and a call's arguments checked against each
/// method. Nothing may trap; refusals are the parser's errors.
func fuzzWIT(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let text = UnsafeRawBufferPointer(start: data, count: size).text
    guard let interface = try? ObjectInterface(wit: text) else { return 0 }
    _ = try? StubGenerator.server(wit: text, source: "fuzz.wit")
    _ = try? StubGenerator.client(wit: text, source: "fuzz.wit")
    for method in interface.methods {
        _ = try? interface.arguments(of: method.name, from: .list([.int(1), .string("a"), .list([])]))
    }
    return 0
}

/// The executable's entry (SwiftPM names it after the module): libFuzzer's driver.
@_cdecl("fuzz_wit_main")
func fuzzMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    runFuzzer(argc, argv) { data, size in fuzzWIT(data, size) }
}

import FuzzDriver

@testable import FerryContainer

/// One input as an OCI bundle's `config.json`, as `ferry container run BUNDLE` reads it. Nothing
/// may trap; refusals name the JSON path at fault.
func fuzzOCI(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    _ = try? OCIBundle.parse(Array(UnsafeBufferPointer(start: data, count: size)), bundle: "/bundles/fuzz")
    return 0
}

/// The executable's entry (SwiftPM names it after the module): libFuzzer's driver.
@_cdecl("fuzz_oci_main")
func fuzzMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    runFuzzer(argc, argv) { data, size in fuzzOCI(data, size) }
}

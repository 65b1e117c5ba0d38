@_silgen_name("LLVMFuzzerRunDriver")
private func LLVMFuzzerRunDriver(
    _ argc: UnsafeMutablePointer<CInt>,
    _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
    _ body: @convention(c) (UnsafePointer<UInt8>, Int) -> CInt
) -> CInt

/// One input, as libFuzzer hands it over; a harness returns 0, and traps only on a bug.
public typealias FuzzInput = @convention(c) (UnsafePointer<UInt8>, Int) -> CInt

/// Runs libFuzzer's driver (its flags, corpus folders and statistics) over `body`. Each harness
/// calls it from its executable's entry, which SwiftPM names after the module (`fuzz_wit_main`),
/// since a fuzz target has no `main` of its own.
public func runFuzzer(
    _ argc: CInt,
    _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?,
    _ body: FuzzInput
) -> CInt {
    var count = argc
    var arguments = argv
    return LLVMFuzzerRunDriver(&count, &arguments, body)
}

extension UnsafeRawBufferPointer {
    /// The input as UTF-8 text (invalid sequences repaired, as a file read as text would be).
    public var text: String { String(decoding: self, as: UTF8.self) }
}

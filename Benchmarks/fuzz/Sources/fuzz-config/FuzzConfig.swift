import FerryCDN
import FerryConfiguration
import FerrySuperserver
import FerrySwitch
import FuzzDriver

/// One input as a YAML configuration file, read as each of Ferry's configurations (the switch's,
/// the superserver's, the redirector's), as `--config FILE` reads it. Nothing may trap; refusals
/// are configuration errors naming the file, line and field.
func fuzzConfig(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let text = UnsafeRawBufferPointer(start: data, count: size).text
    // YAML is parsed once (Yams is most of the time), then read as each configuration.
    guard let file = try? ConfigurationFile.parse(text, file: "fuzz.yaml") else { return 0 }
    _ = try? SwitchConfiguration.read(file)
    _ = try? SuperserverConfiguration.read(file)
    _ = try? RedirectorConfiguration.read(file)
    return 0
}

/// The executable's entry (SwiftPM names it after the module): libFuzzer's driver.
@_cdecl("fuzz_config_main")
func fuzzMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    runFuzzer(argc, argv) { data, size in fuzzConfig(data, size) }
}

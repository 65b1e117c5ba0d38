import FerryGuest
import FerryMigration
import FuzzDriver

/// The key a node trusts code from; its signatures are never valid for a fuzzed module, so each
/// input goes through the whole signature section before it is refused.
let trusted = SigningKey().trusted

/// One input read as what a node takes from a peer before it runs anything: a guest snapshot
/// (raw, and framed with a valid checksum so that the payload's fields are reached), and a
/// signed module's signature section (code pushes). Nothing may trap; refusals are errors.
func fuzzSnapshot(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let input = Array(UnsafeBufferPointer(start: data, count: size))
    _ = try? GuestSnapshot(serialized: input)
    _ = try? GuestSnapshot(serialized: framed(input))
    _ = try? ModuleSignature.verify([0x00, 0x61, 0x73, 0x6D, 0x01, 0x00, 0x00, 0x00] + input, trusting: [trusted])
    return 0
}

/// `payload` as a snapshot's frame: magic, version, length, payload, CRC-32.
func framed(_ payload: [UInt8]) -> [UInt8] {
    var bytes = withUnsafeBytes(of: GuestSnapshot.magic.bigEndian, Array.init)
    bytes += withUnsafeBytes(of: GuestSnapshot.version.bigEndian, Array.init)
    bytes += withUnsafeBytes(of: UInt64(payload.count).bigEndian, Array.init)
    bytes += payload
    return bytes + withUnsafeBytes(of: crc32(payload).bigEndian, Array.init)
}

/// CRC-32 (IEEE 802.3, as zlib computes it), bit by bit: inputs are small.
func crc32(_ bytes: [UInt8]) -> UInt32 {
    var crc: UInt32 = 0xFFFF_FFFF
    for byte in bytes {
        crc ^= UInt32(byte)
        for _ in 0..<8 { crc = crc & 1 == 1 ? (crc >> 1) ^ 0xEDB8_8320 : crc >> 1 }
    }
    return ~crc
}

/// The executable's entry (SwiftPM names it after the module): libFuzzer's driver.
@_cdecl("fuzz_snapshot_main")
func fuzzMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    _ = trusted  // made before the first input, so that LeakSanitizer does not count it against one
    return runFuzzer(argc, argv) { data, size in fuzzSnapshot(data, size) }
}

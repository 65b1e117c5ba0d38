import FerryEndpoints
import FerryKV
import FerryWire
import FuzzDriver
import NIOCore

/// Every FerryWire message a peer can send: the first byte of an input picks one, the rest is
/// its payload.
let messages: [any WireMessage.Type] = [
    ErrorMessage.self, CancelRequest.self, CancelResult.self, StatsRequest.self, ServerStats.self,
    RegisterRequest.self, EndpointLease.self, LookupRequest.self, ListRequest.self, WatchRequest.self,
    EndpointEntries.self, KVGet.self, KVValue.self, KVWrite.self, KVWritten.self, KVList.self, KVEntries.self,
    ObjectCall.self, ObjectResult.self, ObjectRelocate.self, ObjectAdopt.self, ObjectList.self, ObjectListing.self,
]

/// One input, read three ways: as a stream of frames (headers checked, payloads taken whole), as
/// the payload of one message (picked by the first byte), and as an object value (a call's
/// arguments). Nothing may trap; refusals are the decoders' errors.
func fuzzWire(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let input = UnsafeRawBufferPointer(start: data, count: size)
    // A stream of frames, as FrameDecoder reads it.
    var stream = ByteBuffer(bytes: input)
    while let header = try? FrameHeader.read(from: &stream, maxPayloadLength: 1 << 16) {
        guard var payload = stream.readSlice(length: Int(header.payloadLength)) else { break }
        if let type = messages.first(where: { $0.kind == header.kind }) {
            _ = try? type.init(from: &payload)
        }
    }
    // One message's payload.
    if let selector = input.first {
        var payload = ByteBuffer(bytes: input.dropFirst())
        _ = try? messages[Int(selector) % messages.count].init(from: &payload)
    }
    // An object value, nested as deep as the decoder allows.
    var value = ByteBuffer(bytes: input)
    while value.readableBytes > 0, (try? ObjectValue(from: &value, kind: .objectCall)) != nil {}
    return 0
}

/// The executable's entry (SwiftPM names it after the module): libFuzzer's driver.
@_cdecl("fuzz_wire_main")
func fuzzMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    runFuzzer(argc, argv) { data, size in fuzzWire(data, size) }
}

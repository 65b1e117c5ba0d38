import FerryHTTP
import FuzzDriver
import NIOCore

/// One input, read three ways: as pipelined request heads (each parsed in full), as a backend's
/// answer heads, and as a chunked body. Nothing may trap; refusals are the parsers' errors.
func fuzzHTTP(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let input = UnsafeRawBufferPointer(start: data, count: size)
    // Requests, fed in two pieces so that a head split across reads is exercised too.
    var requests = HTTPRequestParser(maxHeadLength: 4096, maxHeaderCount: 32)
    var buffer = ByteBuffer(bytes: input.prefix(size / 2))
    var fed = false
    while true {
        do {
            guard (try requests.parse(&buffer)) != nil else {
                if fed { break }
                buffer.writeBytes(input.suffix(size - size / 2))
                fed = true
                continue
            }
        } catch {
            break
        }
    }
    // Answers from a backend.
    var answers = HTTPResponseParser(maxHeadLength: 4096, maxHeaderCount: 32)
    var answer = ByteBuffer(bytes: input)
    while let head = try? answers.nextHead(&answer) {
        _ = head.withUnsafeReadableBytes { try? HTTPResponseParser.statusLine($0) }
    }
    // A chunked body, consumed as it would arrive.
    var body = BodyFraming.chunked()
    var offset = 0
    while offset < size, !body.isComplete {
        guard let taken = try? body.consume(UnsafeRawBufferPointer(rebasing: input[offset...])), taken > 0 else {
            break
        }
        offset += taken
    }
    return 0
}

/// The executable's entry (SwiftPM names it after the module): libFuzzer's driver.
@_cdecl("fuzz_http_main")
func fuzzMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    runFuzzer(argc, argv) { data, size in fuzzHTTP(data, size) }
}

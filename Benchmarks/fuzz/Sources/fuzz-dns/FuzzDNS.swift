import FuzzDriver

@testable import FerryCDN

/// The redirector of Examples/redirector.yaml, which answers every query the fuzzer makes.
let responder = DNSResponder(
    configuration: try! RedirectorConfiguration.parse(
        """
        zone: cdn.test
        names: [www]
        origin: http://127.0.0.1:8080
        regions: {east: {networks: [127.0.0.0/24]}}
        edges: [{name: e1, region: east, address: 127.0.0.2:8000}]
        """
    )
)

/// One input as a DNS packet that reaches the redirector: parsed, and when it parses written out
/// again, which must parse (Ferry never sends a packet it could not read); and answered, over UDP
/// and over TCP, as the redirector answers it. Nothing may trap.
func fuzzDNS(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let packet = UnsafeRawBufferPointer(start: data, count: size)
    if let message = try? DNSMessage.parse(packet) {
        let limit = 12 + Int(packet.first ?? 0) * 4
        for written in [message.encoded(), message.encoded(maximumSize: limit)] {
            guard (try? DNSMessage.parse(written)) != nil else {
                fatalError("wrote a packet it cannot read: \(message)")
            }
        }
    }
    let choice = PolicyChoice(target: .origin, reason: .noUsableEdge, scopePrefixLength: 24)
    for overTCP in [false, true] {
        if let answer = responder.answer(
            packet,
            client: IPAddress("127.0.0.9"),
            overTCP: overTCP,
            choose: { _ in choice }
        ) {
            guard (try? DNSMessage.parse(answer)) != nil else { fatalError("answered with a packet it cannot read") }
        }
    }
    return 0
}

/// The executable's entry (SwiftPM names it after the module): libFuzzer's driver.
@_cdecl("fuzz_dns_main")
func fuzzMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    _ = responder  // made before the first input, so that LeakSanitizer does not count it against one
    return runFuzzer(argc, argv) { data, size in fuzzDNS(data, size) }
}

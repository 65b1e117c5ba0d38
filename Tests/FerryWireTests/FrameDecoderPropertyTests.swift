import FerryWire
import NIOCore
import Testing

/// Feeds the decoder random and mutated bytes: it must either produce frames, ask for more, or
/// throw a ``FerryWireError`` — never crash, never hand out a frame longer than the limit.
@Suite struct FrameDecoderPropertyTests {
    /// SplitMix64, seeded, so a failure reproduces.
    struct Generator: RandomNumberGenerator {
        var state: UInt64
        mutating func next() -> UInt64 {
            self.state &+= 0x9E37_79B9_7F4A_7C15
            var z = self.state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
    }

    static let limit = 4096

    /// Runs the decoder over `bytes` delivered in random pieces, as a channel would.
    private func feed(_ bytes: [UInt8], using generator: inout Generator) -> (frames: [Frame], error: (any Error)?) {
        var decoder = FrameDecoder(maxPayloadLength: Self.limit)
        var buffer = ByteBuffer()
        var frames: [Frame] = []
        var offset = 0
        while offset < bytes.count {
            let piece = Int.random(in: 1...max(1, bytes.count - offset), using: &generator)
            buffer.writeBytes(bytes[offset..<offset + piece])
            offset += piece
            do {
                while let frame = try decoder.decode(buffer: &buffer) { frames.append(frame) }
            } catch {
                return (frames, error)
            }
        }
        return (frames, nil)
    }

    @Test(arguments: 0..<4)
    func randomBytesNeverCrashTheDecoder(seed: UInt64) {
        var generator = Generator(state: seed)
        for _ in 0..<2500 {
            let count = Int.random(in: 0...256, using: &generator)
            var bytes = (0..<count).map { _ in UInt8.random(in: 0...255, using: &generator) }
            // Half the time start with a valid magic and version so the rest of the header is exercised.
            if Bool.random(using: &generator), bytes.count >= 5 {
                bytes.replaceSubrange(0..<5, with: [0x46, 0x52, 0x52, 0x59, 1])
            }
            let (frames, error) = self.feed(bytes, using: &generator)
            if let error { #expect(error is FerryWireError) }
            for frame in frames { #expect(frame.payload.readableBytes <= Self.limit) }
        }
    }

    @Test(arguments: 0..<4)
    func mutatedValidStreamsNeverCrashTheDecoder(seed: UInt64) {
        var generator = Generator(state: seed &+ 100)
        for _ in 0..<2500 {
            var stream = ByteBuffer()
            for id in 0..<UInt64.random(in: 1...4, using: &generator) {
                let payload = (0..<Int.random(in: 0...64, using: &generator)).map { _ in
                    UInt8.random(in: 0...255, using: &generator)
                }
                let frame = Frame(
                    kind: MessageKind(rawValue: .random(in: 0...255, using: &generator)),
                    requestID: id,
                    payload: ByteBuffer(bytes: payload)
                )
                try! FrameEncoder().encode(data: frame, out: &stream)
            }
            var bytes = Array(stream.readableBytesView)
            for _ in 0..<Int.random(in: 1...4, using: &generator) {
                let index = Int.random(in: 0..<bytes.count, using: &generator)
                switch Int.random(in: 0..<3, using: &generator) {
                case 0: bytes[index] = .random(in: 0...255, using: &generator)
                case 1: bytes.removeSubrange(index...)
                default: bytes.insert(.random(in: 0...255, using: &generator), at: index)
                }
                if bytes.isEmpty { break }
            }
            let (frames, error) = self.feed(bytes, using: &generator)
            if let error { #expect(error is FerryWireError) }
            for frame in frames {
                #expect(frame.payload.readableBytes <= Self.limit)
                // Whatever arrived, decoding a typed message from it fails cleanly or succeeds.
                do { _ = try frame.decode(as: ServerStats.self) } catch {
                    #expect(error is FerryWireError || error is ErrorMessage)
                }
            }
        }
    }
}

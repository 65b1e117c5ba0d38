import FerryWire
import Logging
import NIOCore
import NIOEmbedded
import NIOTestUtils
import Testing

@Suite struct FrameCodecTests {
    private func frameBytes(_ frame: Frame) -> ByteBuffer {
        var buffer = ByteBuffer()
        try! FrameEncoder().encode(data: frame, out: &buffer)
        return buffer
    }

    private func pipeline() throws -> EmbeddedChannel {
        let channel = EmbeddedChannel()
        try channel.pipeline.syncOperations.addFrameCodec(maxPayloadLength: 1024, logger: Logger(label: "test"))
        return channel
    }

    @Test func encodesTheDocumentedHeaderLayout() {
        let frame = Frame(
            kind: .ping,
            flags: .response,
            requestID: 0x0102_0304_0506_0708,
            payload: ByteBuffer(bytes: [9, 9])
        )
        let bytes = Array(self.frameBytes(frame).readableBytesView)
        #expect(
            bytes == [
                0x46, 0x52, 0x52, 0x59,  // "FRRY"
                1,  // version
                0x02,  // kind: ping
                0x00, 0x01,  // flags: response
                1, 2, 3, 4, 5, 6, 7, 8,  // request id
                0, 0, 0, 2,  // payload length
                9, 9,
            ]
        )
    }

    @Test func roundTripsThroughAPipeline() throws {
        let channel = try self.pipeline()
        let sent = Frame(CancelRequest(connectionID: 7, requestID: 3), requestID: 42)
        try channel.writeOutbound(sent)
        let bytes = try #require(try channel.readOutbound(as: ByteBuffer.self))
        try channel.writeInbound(bytes)
        let received = try #require(try channel.readInbound(as: Frame.self))
        #expect(received == sent)
        #expect(try received.decode(as: CancelRequest.self) == CancelRequest(connectionID: 7, requestID: 3))
        #expect(try channel.finish().isClean)
    }

    @Test func aMessageWrittenStraightIntoABufferIsTheFrameThatWouldCarryIt() throws {
        let message = CancelRequest(connectionID: 7, requestID: 3)
        var buffer = ByteBuffer(bytes: [1, 2, 3])  // after what the buffer already holds
        Frame.write(message, flags: .response, requestID: 42, to: &buffer)
        var expected = ByteBuffer(bytes: [1, 2, 3])
        Frame(message, flags: .response, requestID: 42).write(to: &expected)
        #expect(buffer == expected)
        buffer.moveReaderIndex(forwardBy: 3)
        let header = try #require(try FrameHeader.read(from: &buffer, maxPayloadLength: 1024))
        #expect(Int(header.payloadLength) == buffer.readableBytes)
    }

    @Test func decodesFramesSplitAtEveryByte() throws {
        let frames = [
            Frame(kind: .ping, requestID: 1, payload: ByteBuffer(string: "hello")),
            Frame(StatsRequest(), requestID: 2),
            Frame(ServerStats(entries: [("a", 1), ("b", -2)]), flags: .response, requestID: 3),
        ]
        var input = ByteBuffer()
        for frame in frames {
            var bytes = self.frameBytes(frame)
            input.writeBuffer(&bytes)
        }
        try ByteToMessageDecoderVerifier.verifyDecoder(
            inputOutputPairs: [(input, frames)],
            decoderFactory: { FrameDecoder() }
        )
    }

    @Test(arguments: [
        ([0x47, 0x45, 0x54, 0x20] + [UInt8](repeating: 0x41, count: 16), "magic"),  // an HTTP client on the wrong port
        ([0x46, 0x52, 0x52, 0x59, 9, 2, 0, 0] + [UInt8](repeating: 0, count: 12), "version 9"),
        ([0x46, 0x52, 0x52, 0x59, 1, 2, 0x80, 0] + [UInt8](repeating: 0, count: 12), "unknown flag"),
        ([0x46, 0x52, 0x52, 0x59, 1, 2, 0, 0] + [UInt8](repeating: 0, count: 8) + [0, 0, 4, 1], "exceeds the limit"),
    ])
    func refusesMalformedHeadersAndClosesTheConnection(bytes: [UInt8], reason: String) throws {
        var decoder = FrameDecoder(maxPayloadLength: 1024)
        var buffer = ByteBuffer(bytes: bytes)
        #expect {
            _ = try decoder.decode(buffer: &buffer)
        } throws: { error in
            "\(error)".contains(reason)
        }

        let channel = try self.pipeline()
        try channel.writeInbound(ByteBuffer(bytes: bytes))
        #expect(try channel.readInbound(as: Frame.self) == nil)
        #expect(!channel.isActive, "a malformed frame closes its connection")
    }

    @Test func refusesAnOversizedFrameAsSoonAsItsHeaderArrives() throws {
        var decoder = FrameDecoder(maxPayloadLength: 100)
        var header = ByteBuffer()
        FrameHeader(kind: .ping, requestID: 1, payloadLength: 101).write(to: &header)
        #expect(throws: FerryWireError.frameTooLarge(length: 101, limit: 100)) {
            try decoder.decode(buffer: &header)
        }
    }

    @Test func reportsAStreamThatEndsInsideAFrame() throws {
        let channel = EmbeddedChannel(handler: ByteToMessageHandler(FrameDecoder()))
        var bytes = self.frameBytes(Frame(kind: .ping, requestID: 1, payload: ByteBuffer(string: "0123456789")))
        bytes.moveWriterIndex(to: bytes.writerIndex - 4)
        try channel.writeInbound(bytes)
        #expect(try channel.readInbound(as: Frame.self) == nil)
        #expect {
            _ = try channel.finish()
        } throws: { error in
            error as? FerryWireError == .truncatedFrame(have: 26, need: 30)
        }
    }

    @Test func anErrorFrameIsThrownAsTheErrorItCarries() throws {
        let frame = Frame(
            ErrorMessage(code: .notFound, message: "no such request"),
            flags: [.response, .error],
            requestID: 5
        )
        #expect(throws: ErrorMessage(code: .notFound, message: "no such request")) {
            try frame.decode(as: CancelResult.self)
        }
    }

    @Test func refusesMalformedPayloads() throws {
        // Truncated, trailing bytes, a string longer than the payload, invalid UTF-8, an unknown enum value.
        let cases: [(MessageKind, [UInt8])] = [
            (.cancel, [0, 0, 0, 0, 0, 0, 0, 1]),
            (.cancel, [UInt8](repeating: 0, count: 17)),
            (.error, [0, 1, 0xFF, 0xFF, 0xFF, 0xFF, 65]),
            (.error, [0, 1, 0, 0, 0, 2, 0xC3, 0x28]),
            (.cancelResult, [9]),
            (.statsResult, [0xFF, 0xFF]),
        ]
        for (kind, payload) in cases {
            let frame = Frame(kind: kind, requestID: 1, payload: ByteBuffer(bytes: payload))
            #expect(throws: FerryWireError.self) {
                switch kind {
                case .cancel: _ = try frame.decode(as: CancelRequest.self)
                case .error: _ = try frame.decode(as: ErrorMessage.self)
                case .cancelResult: _ = try frame.decode(as: CancelResult.self)
                default: _ = try frame.decode(as: ServerStats.self)
                }
            }
        }
    }

    @Test func unknownKindsStillDecodeAsFramesSoThePeerCanAnswerThem() throws {
        var decoder = FrameDecoder()
        var bytes = self.frameBytes(Frame(kind: MessageKind(rawValue: 0xEE), requestID: 9, payload: ByteBuffer()))
        let frame = try #require(try decoder.decode(buffer: &bytes))
        #expect(frame.header.kind.rawValue == 0xEE)
        #expect("\(frame.header.kind)" == "kind 0xee")
    }
}

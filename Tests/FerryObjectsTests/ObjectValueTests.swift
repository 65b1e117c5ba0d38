import FerryWire
import Foundation
import NIOCore
import Testing

@Suite struct ObjectValueTests {
    static let samples: [ObjectValue] = [
        .null, .bool(true), .bool(false), .int(0), .int(-1), .int(Int64.max), .int(Int64.min), .double(-2.5),
        .string(""), .string("grüße"), .bytes([0, 255, 7]), .list([]), .list([.int(1), .string("a"), .list([.null])]),
        .record([ObjectField("by", .int(2)), ObjectField("note", .record([ObjectField("x", .bool(true))]))]),
    ]

    @Test(arguments: samples) func everyValueReadsBackAsItself(_ value: ObjectValue) throws {
        var buffer = ByteBuffer()
        value.encode(into: &buffer)
        #expect(try ObjectValue(from: &buffer, kind: .objectCall) == value)
        #expect(buffer.readableBytes == 0)
    }

    @Test func smallIntegersTakeTwoBytes() {
        var buffer = ByteBuffer()
        ObjectValue.int(-60).encode(into: &buffer)
        #expect(buffer.readableBytes == 2, "a tag and a one-byte zigzag varint")
    }

    @Test(arguments: [
        ([UInt8]([9]), "unknown value tag 9"),
        ([5, 10, 0x61], "length 10 runs past"),
        ([6, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01], "runs past"),
        ([5, 2, 0xff, 0xfe], "not valid UTF-8"),
        ([3, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80], "longer than 10 bytes"),
        ([7, 100], "runs past"),
        ([], "cut short"),
    ])
    func hostileBytesAreRefusedWithTheReason(_ bytes: [UInt8], _ reason: String) {
        var buffer = ByteBuffer(bytes: bytes)
        #expect {
            try ObjectValue(from: &buffer, kind: .objectCall)
        } throws: { error in
            "\(error)".contains(reason)
        }
    }

    @Test func nestingPastTheLimitIsRefusedWithoutExhaustingTheStack() {
        var buffer = ByteBuffer(bytes: [UInt8](repeating: 7, count: 100_000).flatMap { [$0, 1] })
        #expect {
            try ObjectValue(from: &buffer, kind: .objectCall)
        } throws: { error in
            "\(error)".contains("nested deeper than 32")
        }
    }

    @Test func jsonArgumentsBecomeRecordsAndListsWithTheirTypes() throws {
        let decoded = try JSONDecoder().decode(
            ObjectValue.self,
            from: Data(#"{"by": 2, "flag": true, "ratio": 0.5, "name": "x", "items": [1, null]}"#.utf8)
        )
        #expect(
            decoded
                == .record([
                    ObjectField("by", .int(2)), ObjectField("flag", .bool(true)),
                    ObjectField("items", .list([.int(1), .null])),
                    ObjectField("name", .string("x")), ObjectField("ratio", .double(0.5)),
                ])
        )
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        #expect(
            String(decoding: try encoder.encode(decoded), as: UTF8.self)
                == #"{"by":2,"flag":true,"items":[1,null],"name":"x","ratio":0.5}"#
        )
        #expect(String(decoding: try encoder.encode(ObjectValue.bytes([1, 2, 3])), as: UTF8.self) == #""AQID""#)
    }

    @Test func callsAndResultsReadBackAsSent() throws {
        let call = ObjectCall(
            object: "counter/7",
            method: "increment",
            epoch: 42,
            callID: CallID(client: 9, sequence: 3),
            deadlineMilliseconds: 1500,
            arguments: .list([.int(2)])
        )
        #expect(try Frame(call, requestID: 1).decode(as: ObjectCall.self) == call)
        let forward = ObjectResult(.forward(ObjectBinding(object: "counter/7", host: "127.0.0.1", port: 9, epoch: 43)))
        #expect(try Frame(forward, requestID: 1).decode(as: ObjectResult.self) == forward)
    }

    @Test func oversizedArgumentsAreRefusedAsTooLarge() {
        let call = ObjectCall(
            object: "counter",
            method: "increment",
            callID: CallID(client: 1, sequence: 1),
            deadlineMilliseconds: 0,
            arguments: .bytes([UInt8](repeating: 1, count: ObjectLimits.maxArgumentBytes + 1))
        )
        #expect {
            try Frame(call, requestID: 1).decode(as: ObjectCall.self)
        } throws: { error in
            (error as? ErrorMessage)?.code == .tooLarge
        }
    }

    @Test func integersCheckTheirRange() {
        #expect(throws: ErrorMessage.self) { try Int32(objectValue: .int(1 << 40), name: "by") }
        #expect(throws: ErrorMessage.self) { try Int64(objectValue: .string("2"), name: "by") }
        #expect((try? UInt8(objectValue: .int(255), name: "b")) == 255)
    }
}

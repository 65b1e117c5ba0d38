// The one method both sides of the anchor share: `/ferry.bench.Counter/Increment`, raw bytes in
// and out (no protobuf). The request is an 8-byte big-endian Int64 `by`; the answer is the
// counter's new value, 8 bytes big-endian.
import GRPCCore
import Synchronization

let incrementMethod = MethodDescriptor(
    service: ServiceDescriptor(fullyQualifiedService: "ferry.bench.Counter"),
    method: "Increment",
    type: .unary
)

/// Passes messages through as they are: a message is its bytes.
struct RawBytesCoder: MessageSerializer, MessageDeserializer {
    func serialize<Bytes: GRPCContiguousBytes>(_ message: [UInt8]) throws -> Bytes {
        Bytes(message)
    }

    func deserialize<Bytes: GRPCContiguousBytes>(_ serializedMessageBytes: Bytes) throws -> [UInt8] {
        serializedMessageBytes.withUnsafeBytes { Array($0) }
    }
}

func encodeInt64(_ value: Int64) -> [UInt8] {
    withUnsafeBytes(of: value.bigEndian) { Array($0) }
}

func decodeInt64(_ bytes: [UInt8]) throws -> Int64 {
    guard bytes.count == 8 else {
        throw RPCError(code: .invalidArgument, message: "expected 8 bytes, got \(bytes.count)")
    }
    return bytes.reduce(0) { $0 << 8 | Int64($1) }
}

/// The server's state, shared by every call.
final class Counter: Sendable {
    private let value = Atomic<Int64>(0)

    /// Adds the request's `by` and answers the new value.
    func increment(_ request: [UInt8]) throws -> [UInt8] {
        let by = try decodeInt64(request)
        return encodeInt64(self.value.wrappingAdd(by, ordering: .relaxed).newValue)
    }

    func register<Transport: ServerTransport>(with router: inout RPCRouter<Transport>) {
        router.registerHandler(
            forMethod: incrementMethod,
            deserializer: RawBytesCoder(),
            serializer: RawBytesCoder()
        ) { request, _ in
            let single = try await ServerRequest(stream: request)
            let answer = try self.increment(single.message)
            return StreamingServerResponse(single: ServerResponse(message: answer))
        }
    }
}

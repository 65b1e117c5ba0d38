import FerryWire
import Foundation
import NIOConcurrencyHelpers
import WasmKit

/// Messages between the host and one guest: the host posts to the inbox, the guest sends to the
/// outbox (the `ferry.send` and `ferry.receive` imports).
public final class GuestMailbox: Sendable {
    /// The largest message either side may pass.
    public static let maxMessageBytes = 1 << 20

    private let inbox = NIOLockedValueBox<[[UInt8]]>([])
    private let outbox = NIOLockedValueBox<[[UInt8]]>([])

    public init() {}

    /// Queues a message for the guest.
    public func post(_ message: [UInt8]) {
        self.inbox.withLockedValue { $0.append(message) }
    }

    /// Takes every message the guest has sent so far.
    public func takeSent() -> [[UInt8]] {
        self.outbox.withLockedValue { sent in
            defer { sent = [] }
            return sent
        }
    }

    func nextForGuest(capacity: Int) -> (message: [UInt8]?, waiting: Bool, tooLarge: Bool) {
        self.inbox.withLockedValue { inbox in
            guard let first = inbox.first else { return (nil, false, false) }
            guard first.count <= capacity else { return (nil, true, true) }
            inbox.removeFirst()
            return (first, true, false)
        }
    }

    func sentByGuest(_ message: [UInt8]) {
        self.outbox.withLockedValue { $0.append(message) }
    }
}

/// What a guest sees of the world: its arguments, environment, standard streams, log and mailbox.
public struct GuestEnvironment: Sendable {
    public var arguments: [String]
    public var environment: [String: String]
    public var standardInput: Int32
    public var standardOutput: Int32
    public var standardError: Int32
    public var mailbox: GuestMailbox
    /// The only host directories the guest can reach, each a layered view (WASI preopens).
    public var directories: [GuestDirectory]
    /// Where `ferry.log` lines go.
    public var log: @Sendable (String) -> Void

    public init(
        arguments: [String] = [],
        environment: [String: String] = [:],
        standardInput: Int32 = 0,
        standardOutput: Int32 = 1,
        standardError: Int32 = 2,
        mailbox: GuestMailbox = GuestMailbox(),
        directories: [GuestDirectory] = [],
        log: @escaping @Sendable (String) -> Void = { _ in }
    ) {
        self.arguments = arguments
        self.environment = environment
        self.standardInput = standardInput
        self.standardOutput = standardOutput
        self.standardError = standardError
        self.mailbox = mailbox
        self.directories = directories
        self.log = log
    }
}

/// The `ferry` import module: the host API every guest may use.
///
/// | import | signature | does |
/// |---|---|---|
/// | `log` | `(ptr: i32, len: i32)` | writes a line to the host's log |
/// | `clock_ms` | `() -> i64` | milliseconds on the host's monotonic clock |
/// | `random` | `(ptr: i32, len: i32)` | fills memory with random bytes |
/// | `yield` | `()` | a point where the host may end the guest's slice or stop it |
/// | `send` | `(ptr: i32, len: i32) -> i32` | passes a message to the host: 0, or -1 when too large |
/// | `receive` | `(ptr: i32, cap: i32) -> i32` | takes the next message: its length, -1 when none, -2 when it does not fit |
enum FerryHostAPI {
    static let module = "ferry"

    static func define(
        in imports: inout Imports,
        store: Store,
        environment: GuestEnvironment,
        checkDeadline: @escaping () throws -> Void
    ) {
        let started = ContinuousClock.now
        imports.define(
            module: Self.module,
            name: "log",
            Function(store: store, parameters: [.i32, .i32]) { caller, arguments in
                try checkDeadline()
                let bytes = try Self.read(caller, arguments[0], arguments[1], limit: 64 << 10, call: "log")
                environment.log(String(decoding: bytes, as: UTF8.self))
                return []
            }
        )
        imports.define(
            module: Self.module,
            name: "clock_ms",
            Function(store: store, parameters: [], results: [.i64]) { _, _ in
                [.i64(UInt64((ContinuousClock.now - started).wholeMilliseconds))]
            }
        )
        imports.define(
            module: Self.module,
            name: "random",
            Function(store: store, parameters: [.i32, .i32]) { caller, arguments in
                let (memory, offset, count) = try Self.region(
                    caller,
                    arguments[0],
                    arguments[1],
                    limit: 1 << 20,
                    call: "random"
                )
                var generator = SystemRandomNumberGenerator()
                memory.withUnsafeMutableBufferPointer(offset: UInt(offset), count: count) { buffer in
                    for index in buffer.indices { buffer[index] = generator.next() }
                }
                return []
            }
        )
        imports.define(
            module: Self.module,
            name: "yield",
            Function(store: store, parameters: []) { _, _ in
                try checkDeadline()
                return []
            }
        )
        imports.define(
            module: Self.module,
            name: "send",
            Function(store: store, parameters: [.i32, .i32], results: [.i32]) { caller, arguments in
                try checkDeadline()
                guard Int(arguments[1].i32) <= GuestMailbox.maxMessageBytes else {
                    return [.i32(UInt32(bitPattern: -1))]
                }
                let bytes = try Self.read(
                    caller,
                    arguments[0],
                    arguments[1],
                    limit: GuestMailbox.maxMessageBytes,
                    call: "send"
                )
                environment.mailbox.sentByGuest(bytes)
                return [.i32(0)]
            }
        )
        imports.define(
            module: Self.module,
            name: "receive",
            Function(store: store, parameters: [.i32, .i32], results: [.i32]) { caller, arguments in
                try checkDeadline()
                let capacity = Int(Int32(bitPattern: arguments[1].i32))
                guard capacity >= 0 else { throw GuestStop.badHostCall("receive with a negative capacity \(capacity)") }
                let next = environment.mailbox.nextForGuest(capacity: capacity)
                if next.tooLarge { return [.i32(UInt32(bitPattern: -2))] }
                guard let message = next.message else { return [.i32(UInt32(bitPattern: -1))] }
                let (memory, offset, _) = try Self.region(
                    caller,
                    arguments[0],
                    .i32(UInt32(message.count)),
                    limit: GuestMailbox.maxMessageBytes,
                    call: "receive"
                )
                memory.withUnsafeMutableBufferPointer(offset: UInt(offset), count: message.count) { buffer in
                    buffer.copyBytes(from: message)
                }
                return [.i32(UInt32(message.count))]
            }
        )
    }

    /// The caller's memory and a checked region of it: a guest that passes a bad pointer or
    /// length is stopped, never allowed to make the host read or write out of bounds.
    private static func region(
        _ caller: borrowing Caller,
        _ pointer: Value,
        _ length: Value,
        limit: Int,
        call: String
    ) throws -> (WasmKit.Memory, Int, Int) {
        guard let memory = caller.instance?.exports[memory: "memory"] else {
            throw GuestStop.badHostCall("\(call): the guest exports no memory named 'memory'")
        }
        let offset = Int(pointer.i32)
        let count = Int(Int32(bitPattern: length.i32))
        guard count >= 0, count <= limit, offset + count <= memory.byteCount else {
            throw GuestStop.badHostCall(
                "\(call): \(count) bytes at \(offset) are outside the guest's \(memory.byteCount)-byte memory (or over \(limit))"
            )
        }
        return (memory, offset, count)
    }

    private static func read(
        _ caller: borrowing Caller,
        _ pointer: Value,
        _ length: Value,
        limit: Int,
        call: String
    ) throws
        -> [UInt8]
    {
        let (memory, offset, count) = try Self.region(caller, pointer, length, limit: limit, call: call)
        return memory.withUnsafeBufferPointer(offset: UInt(offset), count: count) { [UInt8]($0) }
    }
}

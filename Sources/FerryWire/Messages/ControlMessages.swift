import NIOCore

/// Asks a server to stop request `requestID` of connection `connectionID` — the ids the server
/// reported in the `Ferry-Connection-Id` and `Ferry-Request-Id` response headers.
public struct CancelRequest: WireMessage, Hashable {
    public static let kind = MessageKind.cancel

    public var connectionID: UInt64
    public var requestID: UInt64

    public init(connectionID: UInt64, requestID: UInt64) {
        self.connectionID = connectionID
        self.requestID = requestID
    }

    public init(from payload: inout ByteBuffer) throws {
        self.connectionID = try payload.readWireInteger(for: Self.kind, field: "connectionID")
        self.requestID = try payload.readWireInteger(for: Self.kind, field: "requestID")
    }

    public func encode(into payload: inout ByteBuffer) {
        payload.writeInteger(self.connectionID)
        payload.writeInteger(self.requestID)
    }
}

/// What became of a ``CancelRequest``.
public struct CancelResult: WireMessage, Hashable {
    public static let kind = MessageKind.cancelResult

    public enum Outcome: UInt8, Sendable {
        /// The request was running and has been told to stop.
        case cancelled = 1
        /// No such request is in progress: it finished, never existed, or was already cancelled.
        case notRunning = 2
    }

    public var outcome: Outcome

    public init(outcome: Outcome) { self.outcome = outcome }

    public init(from payload: inout ByteBuffer) throws {
        let raw = try payload.readWireInteger(UInt8.self, for: Self.kind, field: "outcome")
        guard let outcome = Outcome(rawValue: raw) else {
            throw FerryWireError.malformedPayload(kind: Self.kind, reason: "unknown outcome \(raw)")
        }
        self.outcome = outcome
    }

    public func encode(into payload: inout ByteBuffer) {
        payload.writeInteger(self.outcome.rawValue)
    }
}

/// Asks a server for its counters.
public struct StatsRequest: WireMessage, Hashable {
    public static let kind = MessageKind.stats
    public init() {}
    public init(from payload: inout ByteBuffer) throws {}
    public func encode(into payload: inout ByteBuffer) {}
}

/// A server's counters at one moment, as name/value pairs in a stable order.
public struct ServerStats: WireMessage, Hashable {
    public static let kind = MessageKind.statsResult
    /// The most entries a peer accepts, so a hostile count cannot make it loop for long.
    public static let maxEntries = 1024

    public var entries: [(name: String, value: Int64)]

    public init(entries: [(name: String, value: Int64)]) { self.entries = entries }

    public init(from payload: inout ByteBuffer) throws {
        let count = try payload.readWireInteger(UInt16.self, for: Self.kind, field: "count")
        guard count <= Self.maxEntries else {
            throw FerryWireError.malformedPayload(kind: Self.kind, reason: "\(count) entries, limit \(Self.maxEntries)")
        }
        self.entries = []
        for _ in 0..<count {
            let name = try payload.readWireString(for: Self.kind, field: "name")
            let value = try payload.readWireInteger(Int64.self, for: Self.kind, field: "value")
            self.entries.append((name, value))
        }
    }

    public func encode(into payload: inout ByteBuffer) {
        payload.writeInteger(UInt16(self.entries.count))
        for entry in self.entries {
            payload.writeWireString(entry.name)
            payload.writeInteger(entry.value)
        }
    }

    /// The value of the entry called `name`.
    public subscript(name: String) -> Int64? { self.entries.first { $0.name == name }?.value }

    public static func == (lhs: ServerStats, rhs: ServerStats) -> Bool {
        lhs.entries.elementsEqual(rhs.entries) { $0.name == $1.name && $0.value == $1.value }
    }

    public func hash(into hasher: inout Hasher) {
        for entry in self.entries {
            hasher.combine(entry.name)
            hasher.combine(entry.value)
        }
    }
}

import NIOCore

/// The answer a peer sends instead of a result: a code a program can branch on, and a sentence a
/// person can act on.
public struct ErrorMessage: WireMessage, Error, Hashable, CustomStringConvertible {
    public static let kind = MessageKind.error

    /// What went wrong, as a number stable across versions.
    public struct Code: RawRepresentable, Hashable, Sendable {
        public var rawValue: UInt16
        public init(rawValue: UInt16) { self.rawValue = rawValue }

        public static let unknownKind = Code(rawValue: 1)
        public static let malformed = Code(rawValue: 2)
        public static let notFound = Code(rawValue: 3)
        public static let internalError = Code(rawValue: 4)
        /// A lease the caller names is not held: it ran out, or was never granted.
        public static let notHeld = Code(rawValue: 5)
        /// A field is longer than the peer accepts.
        public static let tooLarge = Code(rawValue: 6)
        /// The peer cannot serve the request now (shutting down, storage failed); try again later.
        public static let unavailable = Code(rawValue: 7)
        /// The arguments do not fit the method: wrong count, names or types.
        public static let invalidArgument = Code(rawValue: 8)
        /// The call's deadline passed before it could start; it was not run.
        public static let deadlineExceeded = Code(rawValue: 9)
        /// The caller's binding names an activation that no longer exists; look the name up again.
        public static let staleEpoch = Code(rawValue: 10)
        /// The process that hosts the object (its own segment) died during or before the call.
        public static let segmentFailed = Code(rawValue: 11)
        /// A name is held exclusively by another registration (single activation).
        public static let held = Code(rawValue: 12)
        /// The object has no such method.
        public static let noSuchMethod = Code(rawValue: 13)
    }

    public var code: Code
    public var message: String

    public init(code: Code, message: String) {
        self.code = code
        self.message = message
    }

    public init(from payload: inout ByteBuffer) throws {
        self.code = Code(rawValue: try payload.readWireInteger(for: Self.kind, field: "code"))
        self.message = try payload.readWireString(for: Self.kind, field: "message")
    }

    public func encode(into payload: inout ByteBuffer) {
        payload.writeInteger(self.code.rawValue)
        payload.writeWireString(self.message)
    }

    public var description: String { self.message }
}

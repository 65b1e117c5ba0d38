import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix

/// etcd's v3 API through its JSON gateway (`POST /v3/...`, keys and values in base64, 64-bit
/// numbers as strings), over NIO's HTTP/1 client: no gRPC stack is within reach here, and the
/// gateway is part of every etcd server. The calls the registry needs: leases (grant, keep
/// alive, revoke), reads of a key or a range, puts under a lease, deletes, and a create that
/// happens only when the key is absent (a transaction), whose revision is a claim's epoch.
///
/// A call goes to the first member that answers, starting with the one that answered last: a
/// member that refuses the connection, times out or has no leader is skipped for the next, and
/// calls after it start where one answered. An error etcd gives for the request itself
/// (a lease that does not exist) is thrown as it is. See Docs/etcd-registry-design.md.
public struct EtcdClient: Sendable {
    public let members: [ServiceEndpoint]
    /// How long one member may take to answer before the next is tried.
    public let timeout: Duration
    /// The member that answered last, shared by every copy of this client.
    private let answering = NIOLockedValueBox(0)

    public init(members: [ServiceEndpoint], timeout: Duration = .seconds(3)) {
        precondition(!members.isEmpty, "an etcd client needs at least one member")
        self.members = members
        self.timeout = timeout
    }

    /// The members in the order to try them: the one that answered last first.
    private var membersToTry: [(index: Int, member: ServiceEndpoint)] {
        let first = self.answering.withLockedValue { $0 }
        return (0..<self.members.count).map { offset in
            let index = (first + offset) % self.members.count
            return (index, self.members[index])
        }
    }

    /// The members of `etcd://HOST:PORT[,HOST:PORT...]`, or nil when `url` is not that.
    public init?(url: String, timeout: Duration = .seconds(3)) {
        guard url.hasPrefix("etcd://") else { return nil }
        let members = url.dropFirst("etcd://".count).split(separator: ",").map { ServiceEndpoint(String($0)) }
        guard !members.isEmpty, members.allSatisfy({ $0 != nil }) else { return nil }
        self.init(members: members.compactMap { $0 }, timeout: timeout)
    }

    // MARK: Leases

    /// A new lease of at least `ttlSeconds` (etcd may grant more: its minimum follows its
    /// election timeout). Returns its id and the ttl granted.
    public func grantLease(ttlSeconds: Int64) async throws -> (id: Int64, ttlSeconds: Int64) {
        let answer = try await self.call("/v3/lease/grant", ["TTL": String(ttlSeconds)])
        return (Self.int(answer["ID"]), Self.int(answer["TTL"]))
    }

    /// Renews lease `id`; returns the seconds it now has, 0 when it is gone (expired or revoked).
    public func keepAlive(_ id: Int64) async throws -> Int64 {
        let answer = try await self.call("/v3/lease/keepalive", ["ID": String(id)])
        return Self.int((answer["result"] as? [String: Any])?["TTL"])
    }

    /// Revokes lease `id` and deletes every key under it; false when there was no such lease.
    @discardableResult
    public func revoke(_ id: Int64) async throws -> Bool {
        do {
            _ = try await self.call("/v3/lease/revoke", ["ID": String(id)])
            return true
        } catch let error as EtcdError where error.code == EtcdError.notFound {
            return false
        }
    }

    // MARK: Keys

    /// The keys from `key` up to `end` (exclusive; nil: `key` alone), and the store's revision
    /// when they were read.
    public func range(_ key: [UInt8], end: [UInt8]? = nil) async throws -> (revision: Int64, values: [EtcdKeyValue]) {
        var request = ["key": Self.base64(key)]
        if let end { request["range_end"] = Self.base64(end) }
        let answer = try await self.call("/v3/kv/range", request)
        return (Self.revision(of: answer), Self.keyValues(answer["kvs"]))
    }

    /// Every key that begins with `prefix`.
    public func range(prefix: [UInt8]) async throws -> (revision: Int64, values: [EtcdKeyValue]) {
        try await self.range(prefix, end: Self.end(ofPrefix: prefix))
    }

    /// Writes `value` at `key` (under `lease` when not 0); returns the revision of the write.
    @discardableResult
    public func put(_ key: [UInt8], _ value: [UInt8], lease: Int64 = 0) async throws -> Int64 {
        var request = ["key": Self.base64(key), "value": Self.base64(value)]
        if lease != 0 { request["lease"] = String(lease) }
        return Self.revision(of: try await self.call("/v3/kv/put", request))
    }

    /// Deletes `key` (up to `end` when given); returns how many keys went.
    @discardableResult
    public func delete(_ key: [UInt8], end: [UInt8]? = nil) async throws -> Int64 {
        var request = ["key": Self.base64(key)]
        if let end { request["range_end"] = Self.base64(end) }
        return Self.int(try await self.call("/v3/kv/deleterange", request)["deleted"])
    }

    /// Writes `value` at `key` under `lease` only if no key is there: an exclusive claim.
    /// Returns the revision that created it (the claim's epoch: etcd's revisions only grow, across
    /// member and leader failures), or nil when the key is held. A key already there under the same
    /// lease is this client's own earlier attempt (a retry after an answer was lost) and counts
    /// as created.
    public func create(_ key: [UInt8], _ value: [UInt8], lease: Int64) async throws -> Int64? {
        let encodedKey = Self.base64(key)
        let request: [String: Any] = [
            "compare": [["target": "CREATE", "key": encodedKey, "result": "EQUAL", "create_revision": "0"]],
            "success": [
                ["request_put": ["key": encodedKey, "value": Self.base64(value), "lease": String(lease)]]
            ],
            "failure": [["request_range": ["key": encodedKey]]],
        ]
        let answer = try await self.call("/v3/kv/txn", request)
        if answer["succeeded"] as? Bool == true { return Self.revision(of: answer) }
        let responses = answer["responses"] as? [[String: Any]] ?? []
        let held = responses.flatMap { Self.keyValues(($0["response_range"] as? [String: Any])?["kvs"]) }
        guard let holder = held.first, lease != 0, holder.lease == lease else { return nil }
        return holder.createRevision
    }

    /// Deletes the keys `deleting` and writes `value` at `key` under `lease`, all at once and only
    /// if no key from `start` up to `end` was written since `revision` (a read's): a
    /// compare-and-set over a range. Returns the revision of the commit, or nil when a key there
    /// changed and the caller must read again.
    public func replace(
        unchangedSince revision: Int64,
        from start: [UInt8],
        end: [UInt8],
        deleting: [[UInt8]],
        put key: [UInt8],
        _ value: [UInt8],
        lease: Int64
    ) async throws -> Int64? {
        let compare: [String: Any] = [
            "target": "MOD", "key": Self.base64(start), "range_end": Self.base64(end), "result": "LESS",
            "mod_revision": String(revision + 1),
        ]
        let success: [[String: Any]] =
            deleting.map { ["request_delete_range": ["key": Self.base64($0)]] } + [
                ["request_put": ["key": Self.base64(key), "value": Self.base64(value), "lease": String(lease)]]
            ]
        let answer = try await self.call("/v3/kv/txn", ["compare": [compare], "success": success])
        return answer["succeeded"] as? Bool == true ? Self.revision(of: answer) : nil
    }

    /// The revision of each change to the keys from `key` up to `end` after `revision`, as etcd
    /// reports them, from the first member that takes the watch. It ends with an error when that
    /// member goes or loses its leader (the caller reads again and watches anew).
    public func watch(_ key: [UInt8], end: [UInt8], after revision: Int64) -> AsyncThrowingStream<Int64, any Error> {
        let request: [String: Any] = [
            "create_request": [
                "key": Self.base64(key), "range_end": Self.base64(end), "start_revision": String(revision + 1),
            ]
        ]
        let members = self.members
        let timeout = self.timeout
        let body = (try? JSONSerialization.data(withJSONObject: request)) ?? Data()
        return AsyncThrowingStream { continuation in
            let task = Task {
                var failures: [String] = []
                for member in members {
                    let channel: NIOAsyncChannel<HTTPClientResponsePart, HTTPClientRequestPart>
                    do {
                        channel = try await Self.connect(to: member, timeout: timeout)
                    } catch {
                        failures.append("\(member): \(Self.reason(error))")
                        continue
                    }
                    do {
                        try await channel.executeThenClose { inbound, outbound in
                            try await Self.send(body, to: "/v3/watch", at: member, on: outbound, streaming: true)
                            var pending = ByteBuffer()
                            for try await part in inbound {
                                guard case .body(var bytes) = part else { continue }
                                pending.writeBuffer(&bytes)
                                while let newline = pending.readableBytesView.firstIndex(of: UInt8(ascii: "\n")) {
                                    let line = pending.readSlice(length: newline - pending.readerIndex + 1)!
                                    guard
                                        let answer = try? JSONSerialization.jsonObject(
                                            with: Data(line.readableBytesView)
                                        )
                                            as? [String: Any]
                                    else { continue }
                                    if let error = answer["error"] as? [String: Any] {
                                        throw EtcdError(
                                            code: Self.int(error["grpc_code"]),
                                            "etcd at \(member) ended the watch: \(error["message"] as? String ?? "\(error)")"
                                        )
                                    }
                                    let result = answer["result"] as? [String: Any] ?? [:]
                                    if result["canceled"] as? Bool == true {
                                        throw EtcdError(code: -1, "etcd at \(member) canceled the watch: \(result)")
                                    }
                                    if result["events"] != nil { continuation.yield(Self.revision(of: result)) }
                                }
                            }
                        }
                        continuation.finish(throwing: EtcdError(code: -1, "etcd at \(member) closed the watch"))
                    } catch {
                        continuation.finish(throwing: error)
                    }
                    return
                }
                continuation.finish(
                    throwing: EtcdError(
                        code: EtcdError.unavailable,
                        "no etcd member took the watch: \(failures.joined(separator: "; "))"
                    )
                )
            }
            continuation.onTermination = { _ in task.cancel() }
        }
    }

    // MARK: The gateway

    /// One call, tried on each member in turn until one answers it.
    private func call(_ path: String, _ request: [String: Any]) async throws -> [String: Any] {
        let body = try JSONSerialization.data(withJSONObject: request)
        var failures: [String] = []
        for (index, member) in self.membersToTry {
            let answer: [String: Any]
            do {
                answer = try await Self.post(body, to: path, at: member, timeout: self.timeout)
            } catch {
                try Task.checkCancellation()
                failures.append("\(member): \(Self.reason(error))")
                continue
            }
            if let message = answer["error"] as? String {
                let code = Self.int(answer["code"])
                // Unavailable (no leader, timed out) or a deadline passed: another member may do.
                if code == EtcdError.unavailable || code == EtcdError.deadlineExceeded {
                    failures.append("\(member): \(message)")
                    continue
                }
                throw EtcdError(code: code, "etcd at \(member) refused \(path): \(message)")
            }
            self.answering.withLockedValue { $0 = index }
            return answer
        }
        throw EtcdError(
            code: EtcdError.unavailable,
            "no etcd member answered \(path): \(failures.joined(separator: "; ")); is the etcd cluster up and does it have a leader?"
        )
    }

    /// POSTs `body` to one member and reads its JSON answer (the first line of a stream's).
    private static func post(
        _ body: Data,
        to path: String,
        at member: ServiceEndpoint,
        timeout: Duration
    ) async throws -> [String: Any] {
        let channel = try await Self.connect(to: member, timeout: timeout)
        // The whole exchange within `timeout`: closing the connection ends a read that waits.
        let deadline = channel.channel.eventLoop.scheduleTask(in: TimeAmount(timeout)) {
            channel.channel.close(promise: nil)
        }
        defer { deadline.cancel() }
        let text = try await channel.executeThenClose { inbound, outbound in
            try await Self.send(body, to: path, at: member, on: outbound, streaming: false)
            var collected = ByteBuffer()
            reading: for try await part in inbound {
                switch part {
                case .head: continue
                case .body(var bytes): collected.writeBuffer(&bytes)
                case .end: break reading
                }
            }
            return String(buffer: collected)
        }
        // A stream (keepalive) answers a JSON object per line; one request gets one.
        guard let line = text.split(separator: "\n").first(where: { !$0.isEmpty }),
            let answer = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]
        else {
            throw EtcdError(code: -1, "etcd at \(member) answered \(path) with no JSON: '\(text.prefix(200))'")
        }
        // A stream's error comes as an object under "error".
        if let error = answer["error"] as? [String: Any] {
            return ["error": error["message"] as? String ?? "\(error)", "code": error["grpc_code"] ?? -1]
        }
        return answer
    }

    private static func connect(
        to member: ServiceEndpoint,
        timeout: Duration
    ) async throws -> NIOAsyncChannel<HTTPClientResponsePart, HTTPClientRequestPart> {
        try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .connectTimeout(TimeAmount(timeout))
            .connect(host: member.host, port: member.port) { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHTTPClientHandlers()
                    return try NIOAsyncChannel<HTTPClientResponsePart, HTTPClientRequestPart>(
                        wrappingChannelSynchronously: channel
                    )
                }
            }
    }

    /// A JSON POST. A stream (a watch) asks to be ended when the member loses its leader, rather
    /// than going quiet.
    private static func send(
        _ body: Data,
        to path: String,
        at member: ServiceEndpoint,
        on outbound: NIOAsyncChannelOutboundWriter<HTTPClientRequestPart>,
        streaming: Bool
    ) async throws {
        var head = HTTPRequestHead(version: .http1_1, method: .POST, uri: path)
        head.headers.add(name: "Host", value: "\(member.host):\(member.port)")
        head.headers.add(name: "Content-Type", value: "application/json")
        head.headers.add(name: "Content-Length", value: String(body.count))
        if streaming {
            head.headers.add(name: "Grpc-Metadata-Hasleader", value: "true")
        } else {
            head.headers.add(name: "Connection", value: "close")
        }
        try await outbound.write(.head(head))
        try await outbound.write(.body(.byteBuffer(ByteBuffer(bytes: body))))
        try await outbound.write(.end(nil))
    }

    /// Why a member could not be reached, in a few words rather than NIO's dump.
    private static func reason(_ error: any Error) -> String {
        let text = "\(error)"
        if text.contains("Connection refused") { return "connection refused (nothing listens there)" }
        if case ChannelError.connectTimeout = error { return "no answer to the connection" }
        if case ChannelError.ioOnClosedChannel = error { return "no answer in time" }
        return text
    }

    // MARK: JSON

    private static func base64(_ bytes: [UInt8]) -> String { Data(bytes).base64EncodedString() }

    private static func bytes(_ value: Any?) -> [UInt8] {
        (value as? String).flatMap { Data(base64Encoded: $0) }.map { [UInt8]($0) } ?? []
    }

    /// A 64-bit number as the gateway gives it (a string), or as JSON's number; 0 when left out.
    private static func int(_ value: Any?) -> Int64 {
        if let text = value as? String { return Int64(text) ?? 0 }
        if let number = value as? NSNumber { return number.int64Value }
        return 0
    }

    private static func revision(of answer: [String: Any]) -> Int64 {
        Self.int((answer["header"] as? [String: Any])?["revision"])
    }

    private static func keyValues(_ value: Any?) -> [EtcdKeyValue] {
        (value as? [[String: Any]] ?? []).map {
            EtcdKeyValue(
                key: Self.bytes($0["key"]),
                value: Self.bytes($0["value"]),
                createRevision: Self.int($0["create_revision"]),
                modRevision: Self.int($0["mod_revision"]),
                lease: Self.int($0["lease"])
            )
        }
    }

    /// The end of the range of keys that begin with `prefix`: the prefix with its last byte that
    /// is not 0xff raised by one (etcd's `GetPrefixRangeEnd`); `[0]` (every key) when there is none.
    static func end(ofPrefix prefix: [UInt8]) -> [UInt8] {
        var end = prefix
        while let last = end.last {
            if last < 0xff {
                end[end.count - 1] = last + 1
                return end
            }
            end.removeLast()
        }
        return [0]
    }
}

/// One key as etcd holds it.
public struct EtcdKeyValue: Sendable, Equatable {
    public var key: [UInt8]
    public var value: [UInt8]
    /// The revision of the write that created it: the epoch of a claim.
    public var createRevision: Int64
    public var modRevision: Int64
    /// The lease it lives under; 0 for none.
    public var lease: Int64
}

/// What etcd refused, or that no member answered; `code` is etcd's (gRPC's) code.
public struct EtcdError: Error, CustomStringConvertible {
    public static let deadlineExceeded: Int64 = 2
    public static let notFound: Int64 = 5
    public static let unavailable: Int64 = 14

    public let code: Int64
    public let description: String

    init(code: Int64, _ description: String) {
        self.code = code
        self.description = description
    }
}

import Testing

@testable import FerryCDN

/// Bytes from hex written with spaces and line breaks for readability.
private func hex(_ text: String) -> [UInt8] {
    let digits = text.unicodeScalars.compactMap { UInt8(String($0), radix: 16) }
    return stride(from: 0, to: digits.count - 1, by: 2).map { digits[$0] << 4 | digits[$0 + 1] }
}

private func name(_ text: String) -> DNSName {
    DNSName(text)!
}

/// A deterministic generator, so that a failing fuzz case fails the same way every run.
private struct XorShift {
    var state: UInt64

    mutating func next() -> UInt64 {
        self.state ^= self.state << 13
        self.state ^= self.state >> 7
        self.state ^= self.state << 17
        return self.state
    }

    mutating func below(_ bound: Int) -> Int {
        Int(self.next() % UInt64(bound))
    }

    mutating func byte() -> UInt8 {
        UInt8(truncatingIfNeeded: self.next())
    }
}

/// Expects `bytes` to fail to parse for `reason`, with `id` as the id reported.
private func expectFailure(
    _ bytes: [UInt8],
    _ reason: DNSParseError.Reason,
    id: UInt16?,
    sourceLocation: SourceLocation = #_sourceLocation
) {
    do {
        let message = try DNSMessage.parse(bytes)
        Issue.record("parsed instead of failing with \(reason): \(message)", sourceLocation: sourceLocation)
    } catch {
        #expect(error.reason == reason, sourceLocation: sourceLocation)
        #expect(error.id == id, sourceLocation: sourceLocation)
    }
}

/// A query as `dig @server www.cdn.test A +subnet=10.1.2.0/24` (BIND 9.18) sends it.
private let digQuery = hex(
    """
    8f3a 0120 0001 0000 0000 0001
    03 777777 03 63646e 04 74657374 00  0001 0001
    00 0029 04d0 00 00 0000 0017
    0008 0007 0001 18 00 0a0102
    000a 0008 c45a1e9b37226f01
    """
)
// Header: id 0x8f3a; flags 0x0120 = RD and AD (dig sets AD by default); 1 question, 1 additional (the OPT).
// Question: www.cdn.test as length-prefixed labels ending in the zero byte; QTYPE 1 (A), QCLASS 1 (IN).
// OPT: root owner (00), TYPE 41, CLASS = UDP payload size 1232 (0x04d0), TTL = extended rcode 0, version 0,
// flags 0 (DO clear), RDLENGTH 23 for two options:
//   ECS (code 8, length 7): FAMILY 1 (IPv4), SOURCE 24, SCOPE 0, ADDRESS 10.1.2 (ceil(24/8) = 3 bytes);
//   COOKIE (code 10, length 8): dig's 8-byte client cookie.

/// A response using every decoded record type, so compression and each RDATA layout are exercised together.
private func richResponse() -> DNSMessage {
    let www = name("www.cdn.test")
    let zone = name("cdn.test")
    return DNSMessage(
        header: DNSHeader(id: 77, isResponse: true, authoritative: true, recursionDesired: true),
        questions: [DNSQuestion(name: www, type: .a)],
        answers: [
            DNSRecord(name: www, ttl: 5, data: .cname(name("edge1.cdn.test"))),
            DNSRecord(name: name("edge1.cdn.test"), ttl: 5, data: .a((10, 0, 0, 1))),
            DNSRecord(
                name: name("edge1.cdn.test"),
                ttl: 5,
                data: .aaaa([0x20, 0x01, 0x0d, 0xb8] + [UInt8](repeating: 0, count: 11) + [1])
            ),
        ],
        authority: [
            DNSRecord(name: zone, ttl: 3600, data: .ns(name("ns1.cdn.test"))),
            DNSRecord(
                name: zone,
                ttl: 3600,
                data: .soa(
                    mname: name("ns1.cdn.test"),
                    rname: name("hostmaster.cdn.test"),
                    serial: 2_024_010_101,
                    refresh: 7200,
                    retry: 900,
                    expire: 1_209_600,
                    minimum: 60
                )
            ),
        ],
        additional: [
            DNSRecord(name: zone, ttl: 60, data: .mx(preference: 10, exchange: name("mail.cdn.test"))),
            DNSRecord(name: name("1.0.0.10.in-addr.arpa"), ttl: 60, data: .ptr(name("edge1.cdn.test"))),
            DNSRecord(name: zone, ttl: 60, data: .txt([Array("v=spf1 -all".utf8), [], Array("x".utf8)])),
            DNSRecord(name: zone, ttl: 60, data: .unknown(type: DNSRecordType(99), rdata: [1, 2, 3])),
        ],
        edns: EDNS(
            udpPayloadSize: 1232,
            clientSubnet: ClientSubnet(
                family: .ipv4,
                sourcePrefixLength: 24,
                scopePrefixLength: 24,
                address: [10, 1, 2]
            ),
            options: [EDNSOption(code: 10, data: [1, 2, 3, 4, 5, 6, 7, 8])]
        )
    )
}

@Suite struct DNSNameTests {
    @Test func textWithOrWithoutTheFinalDotIsTheSameName() throws {
        let plain = try #require(DNSName("www.cdn.test"))
        let dotted = try #require(DNSName("www.cdn.test."))
        #expect(plain == dotted)
        #expect(plain.labels == [Array("www".utf8), Array("cdn".utf8), Array("test".utf8)])
        #expect(plain.wireLength == 14)
        #expect(plain.description == "www.cdn.test.")
    }

    @Test func dotAndEmptyTextAreTheRoot() {
        #expect(DNSName(".") == .root)
        #expect(DNSName("") == .root)
        #expect(DNSName.root.labels.isEmpty)
        #expect(DNSName.root.wireLength == 1)
        #expect(DNSName.root.description == ".")
    }

    @Test func comparisonAndHashingIgnoreCaseButTheOriginalCaseIsKept() throws {
        let mixed = try #require(DNSName("WwW.CDN.test"))
        let lower = try #require(DNSName("www.cdn.test"))
        #expect(mixed == lower)
        #expect(mixed.hashValue == lower.hashValue)
        #expect(Set([mixed, lower]).count == 1)
        #expect(mixed.description == "WwW.CDN.test.")
        #expect(mixed.lowercased().description == "www.cdn.test.")
        #expect(DNSName("www.cdn.test") != DNSName("ww.cdn.test"))
    }

    @Test func badTextIsRefused() {
        #expect(DNSName("a..b") == nil)
        #expect(DNSName(".a") == nil)
        #expect(DNSName(String(repeating: "a", count: 64) + ".test") == nil)
        #expect(DNSName(String(repeating: "a", count: 63) + ".test") != nil)
        let long = Array(repeating: String(repeating: "a", count: 63), count: 4).joined(separator: ".")
        #expect(DNSName(long) == nil)
        #expect(DNSName(labels: [[]]) == nil)
    }

    @Test func escapesSurviveTheTripThroughText() throws {
        let odd = try #require(DNSName(labels: [[UInt8(ascii: "a"), UInt8(ascii: "."), 0, 200], Array("test".utf8)]))
        #expect(odd.description == "a\\.\\000\\200.test.")
        #expect(DNSName(odd.description) == odd)
    }

    @Test func subdomainsAreFoundAtLabelBoundariesOnly() {
        let zone = name("cdn.test")
        #expect(name("www.cdn.test").isSubdomain(of: zone))
        #expect(name("a.b.CDN.test").isSubdomain(of: zone))
        #expect(zone.isSubdomain(of: zone))
        #expect(zone.isSubdomain(of: .root))
        #expect(!name("xcdn.test").isSubdomain(of: zone))
        #expect(!name("test").isSubdomain(of: zone))
        #expect(name("www.cdn.test").dropping(suffix: zone) == name("www"))
        #expect(name("a.b.cdn.test").dropping(suffix: zone)?.labels.count == 2)
        #expect(zone.dropping(suffix: zone) == .root)
        #expect(name("www.other.test").dropping(suffix: zone) == nil)
    }
}

@Suite struct DNSCodecTests {
    /// Captured from `dig @127.0.0.1 www.ferry.test +subnet=10.2.0.0/16` (dig 9.18): ECS 10.2/16, then a cookie.
    @Test func aDigQueryWithASubnetAndACookieParses() throws {
        let query = hex(
            "675001200001000000000001037777770566657272790474657374000001000100002904d000000000001600080006000110000a02000a0008483f5d1bd78ca9ea"
        )
        let message = try DNSMessage.parse(query)
        #expect(message.edns?.clientSubnet?.sourcePrefixLength == 16)
        #expect(message.edns?.clientSubnet?.paddedAddress == [10, 2, 0, 0])
        #expect(message.edns?.options.first?.code == EDNSOption.cookieCode)
    }

    @Test func digQueryWithClientSubnetParsesToItsFields() throws {
        let message = try DNSMessage.parse(digQuery)
        #expect(message.header.id == 0x8F3A)
        #expect(!message.header.isResponse)
        #expect(message.header.opcode == 0)
        #expect(message.header.recursionDesired)
        #expect(message.header.authenticData)
        #expect(message.questions == [DNSQuestion(name: name("www.cdn.test"), type: .a, recordClass: .in)])
        #expect(message.answers.isEmpty && message.authority.isEmpty && message.additional.isEmpty)
        let edns = try #require(message.edns)
        #expect(edns.udpPayloadSize == 1232)
        #expect(edns.version == 0 && edns.extendedRcode == 0 && !edns.dnssecOK)
        let subnet = try #require(edns.clientSubnet)
        #expect(subnet.family == .ipv4)
        #expect(subnet.sourcePrefixLength == 24)
        #expect(subnet.scopePrefixLength == 0)
        #expect(subnet.address == [10, 1, 2])
        #expect(subnet.paddedAddress == [10, 1, 2, 0])
        #expect(subnet.description == "10.1.2.0/24/0")
        #expect(edns.options == [EDNSOption(code: EDNSOption.cookieCode, data: hex("c45a1e9b37226f01"))])
        #expect(message.responseCode == .noError)
        // Nothing to compress in a query: it encodes back to the very same bytes.
        #expect(message.encoded() == digQuery)
    }

    @Test(arguments: [
        DNSRecordData.a((192, 0, 2, 1)),
        .aaaa(Array(0..<16)),
        .ns(DNSName("ns1.cdn.test")!),
        .cname(DNSName("edge.cdn.test")!),
        .ptr(DNSName("host.cdn.test")!),
        .mx(preference: 5, exchange: DNSName("mail.cdn.test")!),
        .soa(
            mname: DNSName("ns1.cdn.test")!,
            rname: DNSName("hostmaster.cdn.test")!,
            serial: 1,
            refresh: 2,
            retry: 3,
            expire: 4,
            minimum: 5
        ),
        .txt([Array("hello".utf8), [], Array(repeating: 0x41, count: 255)]),
        .unknown(type: DNSRecordType(65_280), rdata: [0xC0, 0x0C, 0xFF]),
        .unknown(type: .a, rdata: []),
    ])
    func everyRecordTypeRoundTrips(data: DNSRecordData) throws {
        let record = DNSRecord(name: name("www.cdn.test"), ttl: 300, data: data)
        let message = DNSMessage(
            header: DNSHeader(id: 1, isResponse: true),
            questions: [DNSQuestion(name: name("www.cdn.test"), type: data.type)],
            answers: [record],
            authority: [record],
            additional: [record]
        )
        let parsed = try DNSMessage.parse(message.encoded())
        #expect(parsed == message)
        #expect(parsed.answers.first?.type == data.type)
    }

    @Test func aResponseWithEverythingRoundTrips() throws {
        let message = richResponse()
        let bytes = message.encoded()
        #expect(try DNSMessage.parse(bytes) == message)
        var reused: [UInt8] = Array(repeating: 0xEE, count: 3000)
        message.encode(into: &reused)
        #expect(reused == bytes)
    }

    @Test func longTextIsSplitIntoCharacterStrings() throws {
        let long = [UInt8](repeating: 0x61, count: 600)
        let message = DNSMessage(
            header: DNSHeader(id: 2, isResponse: true),
            answers: [DNSRecord(name: name("cdn.test"), ttl: 1, data: .txt([long]))]
        )
        let parsed = try DNSMessage.parse(message.encoded())
        #expect(
            parsed.answers.first?.data == .txt([Array(long[0..<255]), Array(long[255..<510]), Array(long[510...])])
        )
    }

    @Test func compressionShrinksRepeatedNamesWithPointersToEarlierBytes() throws {
        let www = name("www.cdn.test")
        let message = DNSMessage(
            header: DNSHeader(id: 3, isResponse: true),
            questions: [DNSQuestion(name: www, type: .a)],
            answers: (1...4).map { DNSRecord(name: www, ttl: 5, data: .a((10, 0, 0, UInt8($0)))) },
            authority: [DNSRecord(name: name("cdn.test"), ttl: 5, data: .ns(name("NS1.cdn.test")))]
        )
        let bytes = message.encoded()
        let uncompressed = 12 + (www.wireLength + 4) + 4 * (www.wireLength + 14) + (10 + 10 + 14)
        #expect(bytes.count < uncompressed)
        // Each answer's owner is a pointer to the question's name at offset 12.
        var offset = 12 + www.wireLength + 4
        for _ in 0..<4 {
            #expect(Array(bytes[offset..<(offset + 2)]) == [0xC0, 0x0C])
            offset += 2 + 10 + 4
        }
        // The NS owner points into the question name at "cdn"; its RDATA writes "NS1" and points there too.
        #expect(Array(bytes[offset..<(offset + 2)]) == [0xC0, 0x10])
        #expect(Array(bytes[(offset + 12)..<(offset + 18)]) == [3, 0x4E, 0x53, 0x31, 0xC0, 0x10])
        // Every pointer points back, which is what the parser insists on.
        #expect(try DNSMessage.parse(bytes) == message)
        // The question keeps the asker's case; a later name pointing at it takes that case.
        #expect(try DNSMessage.parse(bytes).authority.first?.data == .ns(name("ns1.cdn.test")))
    }

    @Test func anOversizedAnswerIsTruncatedToTheQuestionAndOPT() throws {
        let www = name("www.cdn.test")
        var message = DNSMessage(
            header: DNSHeader(id: 4, isResponse: true, authoritative: true),
            questions: [DNSQuestion(name: www, type: .a)],
            answers: (0..<40).map { DNSRecord(name: www, ttl: 5, data: .a((10, 0, 0, UInt8($0)))) },
            authority: [DNSRecord(name: name("cdn.test"), ttl: 5, data: .ns(name("ns1.cdn.test")))],
            edns: EDNS(udpPayloadSize: 4096)
        )
        let bytes = message.encoded(maximumSize: 512)
        #expect(bytes.count <= 512)
        let parsed = try DNSMessage.parse(bytes)
        #expect(parsed.header.truncated)
        #expect(parsed.questions == message.questions)
        #expect(parsed.answers.isEmpty && parsed.authority.isEmpty && parsed.additional.isEmpty)
        #expect(parsed.edns == message.edns)
        // Without the limit all 40 fit, untruncated.
        let whole = try DNSMessage.parse(message.encoded())
        #expect(!whole.header.truncated)
        #expect(whole.answers.count == 40)
        // A limit under the header still gives a header.
        message.edns = nil
        #expect(message.encoded(maximumSize: 0).count == 12)
    }

    @Test func responseCodesOver15TravelInTheOPTRecord() throws {
        var message = DNSMessage(header: DNSHeader(id: 5, isResponse: true))
        message.responseCode = .badVers
        #expect(message.header.rcode == .noError)
        #expect(message.edns?.extendedRcode == 1)
        let parsed = try DNSMessage.parse(message.encoded())
        #expect(parsed.responseCode == .badVers)
        message.responseCode = .nxDomain
        #expect(message.edns?.extendedRcode == 0)
        #expect(try DNSMessage.parse(message.encoded()).responseCode == .nxDomain)
    }

    @Test func clientSubnetIsWrittenWithOnlyItsPrefixBytes() throws {
        let subnet = try #require(
            ClientSubnet(family: .ipv4, sourcePrefixLength: 20, address: [10, 1, 0xFF, 99])
        )
        #expect(subnet.address == [10, 1, 0xF0])
        let query = DNSMessage(header: DNSHeader(id: 6), edns: EDNS(udpPayloadSize: 1232, clientSubnet: subnet))
        let bytes = query.encoded()
        #expect(Array(bytes.suffix(11)) == hex("0008 0007 0001 14 00 0a01f0"))
        #expect(try DNSMessage.parse(bytes).edns?.clientSubnet == subnet)
        let v6 = try #require(ClientSubnet(family: .ipv6, sourcePrefixLength: 56, address: Array(1...16)))
        #expect(v6.address == [1, 2, 3, 4, 5, 6, 7])
        #expect(v6.paddedAddress.count == 16)
        #expect(v6.withScope(200).scopePrefixLength == 128)
        #expect(ClientSubnet(family: .ipv4, sourcePrefixLength: 33, address: []) == nil)
        #expect(ClientSubnet(family: .ipv4, sourcePrefixLength: 0, address: [1, 2, 3, 4])?.address == [])
    }
}

@Suite struct DNSHostileInputTests {
    /// A header with the given id and counts (qd, an, ns, ar).
    private func header(id: UInt16 = 0x1234, _ counts: (Int, Int, Int, Int)) -> [UInt8] {
        [UInt8(id >> 8), UInt8(id & 0xFF), 0x01, 0x00]
            + [counts.0, counts.1, counts.2, counts.3].flatMap { [UInt8($0 >> 8), UInt8($0 & 0xFF)] }
    }

    @Test func lessThanAHeaderIsTruncatedWithoutAnID() {
        for length in 0..<12 {
            expectFailure(Array(digQuery.prefix(length)), .truncated, id: nil)
        }
    }

    @Test func everyCutOfAQueryFailsWithItsID() {
        for length in 12..<digQuery.count {
            do {
                _ = try DNSMessage.parse(Array(digQuery.prefix(length)))
                Issue.record("a query cut to \(length) bytes parsed")
            } catch {
                #expect(error.reason == .truncated || error.reason == .countMismatch || error.reason == .badOPT)
                #expect(error.id == 0x8F3A)
            }
        }
    }

    @Test func aCutInsideTheQuestionOrARecordIsTruncated() {
        // The question's name stops after "www" and the start of "cdn".
        expectFailure(self.header((1, 0, 0, 0)) + [3, 0x77, 0x77, 0x77, 3, 0x63], .truncated, id: 0x1234)
        // The name is whole, the type and class are not.
        expectFailure(self.header((1, 0, 0, 0)) + [1, 0x61, 0, 0, 1], .truncated, id: 0x1234)
        // An answer whose RDATA length runs past the end.
        let record: [UInt8] = [0, 0, 1, 0, 1, 0, 0, 0, 5, 0, 4, 10, 0]
        expectFailure(self.header((0, 1, 0, 0)) + record, .truncated, id: 0x1234)
    }

    @Test func reservedLabelTypesAreRefused() {
        expectFailure(self.header((1, 0, 0, 0)) + [0x40, 0x61, 0, 0, 1, 0, 1], .labelTooLong, id: 0x1234)
        expectFailure(self.header((1, 0, 0, 0)) + [0x80, 0x61, 0, 0, 1, 0, 1], .labelTooLong, id: 0x1234)
    }

    @Test func namesOver255BytesAreRefused() {
        let label = [63] + [UInt8](repeating: 0x61, count: 63)
        let tooLong = Array([[UInt8]](repeating: label, count: 4).joined()) + [0, 0, 1, 0, 1]
        expectFailure(self.header((1, 0, 0, 0)) + tooLong, .nameTooLong, id: 0x1234)
        // 3 × 64 + a 61-byte label + root = 255 bytes exactly is fine.
        let longest =
            Array([[UInt8]](repeating: label, count: 3).joined()) + [61]
            + [UInt8](repeating: 0x62, count: 61) + [0, 0, 1, 0, 1]
        #expect((try? DNSMessage.parse(self.header((1, 0, 0, 0)) + longest))?.questions.first?.name.wireLength == 255)
        // Too long only once decompressed: a 250-byte name, then one adding a label and pointing at it.
        let first = Array([[UInt8]](repeating: label, count: 3).joined()) + [57] + [UInt8](repeating: 0x63, count: 57)
        let packet = self.header((2, 0, 0, 0)) + first + [0, 0, 1, 0, 1] + [5, 1, 2, 3, 4, 5, 0xC0, 12, 0, 1, 0, 1]
        expectFailure(packet, .nameTooLong, id: 0x1234)
    }

    @Test func aPointerToItselfIsRefused() {
        expectFailure(self.header((1, 0, 0, 0)) + [0xC0, 12, 0, 1, 0, 1], .badPointer, id: 0x1234)
    }

    @Test func aLoopOfTwoPointersIsRefused() {
        // At 12 a pointer to 14, at 14 a pointer back to 12: the forward one is caught before any looping.
        expectFailure(self.header((2, 0, 0, 0)) + [0xC0, 14, 0xC0, 12, 0, 1, 0, 1, 0, 1], .badPointer, id: 0x1234)
        // The second name is "a" then a pointer to 12, where the first name is a pointer to the second.
        let packet = self.header((2, 0, 0, 0)) + [0xC0, 18, 0, 1, 0, 1] + [1, 0x61, 0xC0, 12, 0, 1, 0, 1]
        expectFailure(packet, .badPointer, id: 0x1234)
    }

    @Test func pointersForwardOrIntoTheHeaderAreRefused() {
        expectFailure(self.header((1, 0, 0, 0)) + [0xC0, 20, 0, 1, 0, 1, 1, 0x61, 0], .badPointer, id: 0x1234)
        expectFailure(self.header((1, 0, 0, 0)) + [0xC0, 4, 0, 1, 0, 1], .badPointer, id: 0x1234)
        // A label that points back into the middle of its own name is refused too.
        expectFailure(self.header((1, 0, 0, 0)) + [1, 0x61, 0xC0, 12, 0, 1, 0, 1], .badPointer, id: 0x1234)
    }

    @Test func aLongChainOfPointersStopsAtTheJumpCap() {
        // 200 questions, each named by a pointer to the previous pointer, the first to a real name.
        var packet = self.header((201, 0, 0, 0)) + [1, 0x61, 0, 0, 1, 0, 1]
        var previous = 12
        for _ in 0..<200 {
            let here = packet.count
            packet += [0xC0 | UInt8(previous >> 8), UInt8(previous & 0xFF), 0, 1, 0, 1]
            previous = here
        }
        expectFailure(packet, .badPointer, id: 0x1234)
    }

    @Test func countsBeyondTheMessageFailWithoutAllocatingForThem() {
        expectFailure(self.header((0xFFFF, 0xFFFF, 0xFFFF, 0xFFFF)) + [0, 0, 1, 0, 1], .countMismatch, id: 0x1234)
        expectFailure(self.header((0, 3, 0, 0)) + [UInt8](repeating: 0, count: 30), .countMismatch, id: 0x1234)
        // Room for the smallest records, but these are bigger.
        expectFailure(
            self.header((3, 0, 0, 0)) + [1, 0x61, 0, 0, 1, 0, 1] + [0, 0, 1, 0, 1] + [0, 0, 1],
            .truncated,
            id: 0x1234
        )
    }

    @Test func bytesAfterTheLastRecordAreIgnored() throws {
        let message = try DNSMessage.parse(digQuery + [1, 2, 3, 4, 5])
        #expect(message == (try DNSMessage.parse(digQuery)))
    }

    @Test func messagesOver65535BytesAreRefused() {
        let huge = digQuery + [UInt8](repeating: 0, count: 65_536 - digQuery.count)
        expectFailure(huge, .messageTooLarge, id: 0x8F3A)
    }

    @Test func a64KiBMessageOfGarbageIsDealtWithQuickly() {
        var random = XorShift(state: 0x9E37_79B9_7F4A_7C15)
        let garbage = (0..<(65_535 - 12)).map { _ in random.byte() }
        let start = ContinuousClock.now
        for counts in [(1, 0, 0, 0), (0, 0, 0, 0), (100, 100, 100, 100), (0, 0, 0, 5000)] {
            _ = try? DNSMessage.parse(self.header(counts) + garbage)
        }
        // All pointers: every question's name is a chain back through the earlier ones.
        var chain = self.header((10_000, 0, 0, 0)) + [1, 0x61, 0, 0, 1, 0, 1]
        var previous = 12
        while chain.count + 6 <= 65_535 {
            let here = chain.count
            chain += [0xC0 | UInt8(previous >> 8), UInt8(previous & 0xFF), 0, 1, 0, 1]
            previous = here <= 0x3FFF ? here : 12
        }
        _ = try? DNSMessage.parse(chain)
        // Generous for a loaded debug build; a quadratic walk of the chain would take minutes.
        #expect(ContinuousClock.now - start < .seconds(10))
        #expect((try? DNSMessage.parse(self.header((0, 0, 0, 0)) + garbage))?.questions.isEmpty == true)
    }

    @Test func misplacedOrRepeatedOPTRecordsAreRefused() {
        let opt: [UInt8] = [0, 0, 41, 0x04, 0xD0, 0, 0, 0, 0, 0, 0]
        expectFailure(self.header((0, 0, 0, 2)) + opt + opt, .badOPT, id: 0x1234)
        expectFailure(self.header((0, 1, 0, 0)) + opt, .badOPT, id: 0x1234)
        expectFailure(self.header((0, 0, 1, 0)) + opt, .badOPT, id: 0x1234)
        let owned: [UInt8] = [1, 0x61, 0, 0, 41, 0x04, 0xD0, 0, 0, 0, 0, 0, 0]
        expectFailure(self.header((0, 0, 0, 1)) + owned, .badOPT, id: 0x1234)
        // An option whose length runs past the RDATA.
        let overrun: [UInt8] = [0, 0, 41, 0x04, 0xD0, 0, 0, 0, 0, 0, 5, 0, 10, 0, 8, 1]
        expectFailure(self.header((0, 0, 0, 1)) + overrun, .badOPT, id: 0x1234)
    }

    @Test(arguments: [
        ("0008 0008 0001 21 00 0a010203", "IPv4 source prefix over 32"),
        ("0008 0008 0001 18 00 0a010203", "4 address bytes for a /24"),
        ("0008 0006 0001 18 00 0a01", "2 address bytes for a /24"),
        ("0008 0007 0001 17 00 0a0103", "a bit set past a /23"),
        ("0008 0007 0003 18 00 0a0102", "unknown family 3"),
        ("0008 0003 0001 18", "shorter than the fixed fields"),
        ("0008 0004 0001 00 21", "scope prefix over 32"),
        ("0008 0014 0002 81 00 00000000000000000000000000000000", "IPv6 source prefix over 128"),
        ("0008 0007 0001 18 00 0a0102 0008 0007 0001 18 00 0a0102", "two ECS options"),
    ])
    func invalidClientSubnetsAreRefused(option: String, why: String) {
        let options = hex(option)
        let opt = [0, 0, 41, 0x04, 0xD0, 0, 0, 0, 0, UInt8(options.count >> 8), UInt8(options.count & 0xFF)] + options
        expectFailure(self.header((0, 0, 0, 1)) + opt, .badClientSubnet, id: 0x1234)
    }

    @Test func validIPv6AndEmptyClientSubnetsAreAccepted() throws {
        for option in ["0008 000b 0002 38 00 20010db8000001", "0008 0004 0001 00 00"] {
            let options = hex(option)
            let opt = [0, 0, 41, 0x04, 0xD0, 0, 0, 0, 0, 0, UInt8(options.count)] + options
            let parsed = try DNSMessage.parse(self.header((0, 0, 0, 1)) + opt)
            #expect(parsed.edns?.clientSubnet != nil)
            #expect(try DNSMessage.parse(parsed.encoded()) == parsed)
        }
    }

    @Test func malformedRecordDataIsRefused() {
        // An NS record whose name stops short of its RDATA length.
        let ns: [UInt8] = [0, 0, 2, 0, 1, 0, 0, 0, 5, 0, 4, 1, 0x61, 0, 0xFF]
        expectFailure(self.header((0, 1, 0, 0)) + ns, .badRecordData, id: 0x1234)
        // A TXT string longer than its RDATA.
        let txt: [UInt8] = [0, 0, 16, 0, 1, 0, 0, 0, 5, 0, 3, 5, 0x61, 0x62]
        expectFailure(self.header((0, 1, 0, 0)) + txt, .badRecordData, id: 0x1234)
    }

    @Test func errorsDescribeThemselves() {
        let error = DNSParseError(.badPointer, id: 7, offset: 12)
        #expect(error.description.contains("pointer"))
        #expect(error.description.contains("12"))
    }

    @Test func thousandsOfMutatedAndRandomMessagesNeverCrashAndValidOnesRoundTrip() throws {
        var random = XorShift(state: 0xDEAD_BEEF_CAFE_F00D)
        let seeds = [digQuery, richResponse().encoded(), richResponse().encoded(maximumSize: 100)]
        var parsedCount = 0
        for round in 0..<40_000 {
            var bytes: [UInt8]
            if round % 4 >= 2 {
                // Half of these from bytes that make labels, pointers, OPT and ECS fields likely.
                let alphabet: [UInt8] = [0, 0, 1, 2, 3, 8, 12, 16, 41, 0x3F, 0x40, 0x61, 0xC0, 0xC0, 0xFF]
                bytes = (0..<random.below(300)).map { _ in
                    round % 4 == 2 ? alphabet[random.below(alphabet.count)] : random.byte()
                }
                if bytes.count >= 12 {
                    // Small counts, so that random bodies get read rather than refused by the header.
                    for index in 4..<12 { bytes[index] = index % 2 == 0 ? 0 : UInt8(random.below(4)) }
                }
            } else {
                bytes = seeds[random.below(seeds.count)]
                for _ in 0...random.below(4) {
                    switch random.below(4) {
                    case 0: bytes[random.below(bytes.count)] = random.byte()
                    case 1: bytes[random.below(bytes.count)] ^= 1 << UInt8(random.below(8))
                    case 2: bytes.removeLast(min(bytes.count - 12, random.below(8)))
                    default: bytes.insert(random.byte(), at: 12 + random.below(bytes.count - 11))
                    }
                }
            }
            guard let message = try? DNSMessage.parse(bytes) else { continue }
            parsedCount += 1
            let again = try DNSMessage.parse(message.encoded())
            #expect(again == message)
        }
        #expect(parsedCount > 1000)
    }
}

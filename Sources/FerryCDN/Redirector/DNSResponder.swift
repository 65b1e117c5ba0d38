/// The authoritative DNS server of the CDN's zone, as a function from a query to its answer:
/// names under the zone get the edge the policy picks for the client (the EDNS Client Subnet
/// when the query carries one, else the sender), each edge's own name gets its address, the
/// apex its SOA and NS; names elsewhere are REFUSED, unknown names under the zone NXDOMAIN.
struct DNSResponder: Sendable {
    let zone: DNSName
    let ttl: UInt32
    let soa: DNSRecord
    let nameServer: DNSRecord
    /// Each edge's address by its name (the label under the zone).
    let edges: [String: IPAddress]
    let served: Set<String>
    let servesAny: Bool
    /// Where clients go when no edge can take them, when the origin is an address (else a CNAME).
    let origin: IPAddress?
    let originName: DNSName?
    /// The address of `ns.<zone>`, when the redirector listens on one.
    let nameServerAddress: IPAddress?

    /// The largest answer over UDP whatever the client offers (the 2020 DNS flag day's figure).
    static let largestDatagram = 1232

    init(configuration: RedirectorConfiguration) {
        let zone = configuration.zone
        self.zone = zone
        self.ttl = configuration.ttl
        let host = zone.prepending("ns")
        self.soa = DNSRecord(
            name: zone,
            ttl: configuration.ttl,
            data: .soa(
                mname: host,
                rname: zone.prepending("hostmaster"),
                serial: configuration.serial,
                refresh: 3600,
                retry: 600,
                expire: 86_400,
                minimum: configuration.ttl
            )
        )
        self.nameServer = DNSRecord(name: zone, ttl: 86_400, data: .ns(host))
        var edges: [String: IPAddress] = [:]
        for edge in configuration.edges {
            if let address = IPAddress(edge.address.host) { edges[edge.name.lowercased()] = address }
        }
        self.edges = edges
        self.served = Set(configuration.names.map { $0.lowercased() })
        self.servesAny = configuration.names.contains("*")
        self.origin = IPAddress(configuration.origin.host)
        self.originName = self.origin == nil ? DNSName(configuration.origin.host) : nil
        self.nameServerAddress = configuration.nameServerAddress
    }

    func answer(
        _ query: UnsafeRawBufferPointer,
        client transportAddress: IPAddress?,
        overTCP: Bool,
        choose: (IPAddress?) -> PolicyChoice
    ) -> [UInt8]? {
        let message: DNSMessage
        do {
            message = try DNSMessage.parse(query)
        } catch {
            // Without a whole header there is no id to answer to.
            guard let id = error.id else { return nil }
            return DNSMessage(header: DNSHeader(id: id, isResponse: true, rcode: .formErr)).encoded(maximumSize: 512)
        }
        // Never answer an answer: two servers could bounce packets forever.
        guard !message.header.isResponse else { return nil }
        var response = DNSMessage(header: DNSHeader(id: message.header.id, isResponse: true, rcode: .noError))
        response.header.opcode = message.header.opcode
        response.header.recursionDesired = message.header.recursionDesired
        response.questions = message.questions
        let limit =
            overTCP ? 65_535 : message.edns.map { min(max(Int($0.udpPayloadSize), 512), Self.largestDatagram) } ?? 512
        if let edns = message.edns {
            response.edns = EDNS(udpPayloadSize: UInt16(Self.largestDatagram))
            guard edns.version == 0 else {
                response.responseCode = .badVers
                return response.encoded(maximumSize: limit)
            }
        }
        guard message.header.opcode == 0 else {
            response.header.rcode = .notImp
            return response.encoded(maximumSize: limit)
        }
        guard message.questions.count == 1, let question = message.questions.first else {
            response.header.rcode = .formErr
            return response.encoded(maximumSize: limit)
        }
        guard question.recordClass == .in || question.recordClass == .any, question.name.isSubdomain(of: self.zone)
        else {
            response.header.rcode = .refused
            return response.encoded(maximumSize: limit)
        }
        response.header.authoritative = true
        let subnet = message.edns?.clientSubnet
        let client =
            subnet.flatMap { $0.sourcePrefixLength > 0 ? IPAddress(bytes: $0.paddedAddress) : nil } ?? transportAddress
        var scope: UInt8 = 0
        let labels = question.name.labelCount - self.zone.labelCount
        let label = labels == 1 ? String(decoding: question.name.firstLabel, as: UTF8.self).lowercased() : ""
        switch labels {
        case 0:
            self.answerApex(question, into: &response)
        case 1 where label == "ns":
            // The zone's own name server: its address when known, else no data (never NXDOMAIN,
            // which would make the delegation look lame).
            if let address = self.nameServerAddress { self.answerAddress(question, address, into: &response) }
        case 1 where self.edges[label] != nil:
            self.answerAddress(question, self.edges[label]!, into: &response)
        case 1 where self.servesAny || self.served.contains(label):
            let choice = choose(client)
            scope = UInt8(clamping: choice.scopePrefixLength)
            switch choice.target {
            case .edge(let edge):
                if let address = IPAddress(edge.address.host) { self.answerAddress(question, address, into: &response) }
            case .origin:
                if let origin = self.origin {
                    self.answerAddress(question, origin, into: &response)
                } else if let originName = self.originName {
                    response.answers.append(DNSRecord(name: question.name, ttl: self.ttl, data: .cname(originName)))
                }
            }
        default:
            response.header.rcode = .nxDomain
            response.authority = [self.soa]
        }
        if response.header.rcode == .noError, response.answers.isEmpty { response.authority = [self.soa] }
        if let subnet, response.edns != nil {
            // RFC 7871 §7.2.1: the answer says for how much of the client's network it holds.
            response.edns?.clientSubnet = subnet.withScope(scope)
        }
        return response.encoded(maximumSize: limit)
    }

    private func answerApex(_ question: DNSQuestion, into response: inout DNSMessage) {
        switch question.type {
        case .soa: response.answers = [self.soa]
        case .ns: response.answers = [self.nameServer]
        case .any: response.answers = [self.soa, self.nameServer]
        default: break
        }
    }

    private func answerAddress(_ question: DNSQuestion, _ address: IPAddress, into response: inout DNSMessage) {
        let data: DNSRecordData
        switch address {
        case .v4(let bits):
            data = .a(
                (
                    UInt8(bits >> 24), UInt8(truncatingIfNeeded: bits >> 16), UInt8(truncatingIfNeeded: bits >> 8),
                    UInt8(truncatingIfNeeded: bits)
                )
            )
        case .v6: data = .aaaa(address.bytes)
        }
        guard question.type == data.type || question.type == .any else { return }
        response.answers.append(DNSRecord(name: question.name, ttl: self.ttl, data: data))
    }
}

extension DNSName {
    /// `label.` followed by this name.
    func prepending(_ label: String) -> DNSName {
        DNSName(labels: [Array(label.utf8)] + self.labels) ?? self
    }
}

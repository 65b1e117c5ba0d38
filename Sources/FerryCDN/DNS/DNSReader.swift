/// Reads a message by index straight from the received bytes.
///
/// Every read is bounds-checked here, before the buffer is touched: `UnsafeRawBufferPointer` only checks its
/// subscript in debug builds, and the bytes come from anyone.
struct DNSReader {
    private let buffer: UnsafeRawBufferPointer
    private var position = 0
    private var id: UInt16?

    private enum Section {
        case answer
        case authority
        case additional
    }

    init(_ buffer: UnsafeRawBufferPointer) {
        self.buffer = buffer
    }

    private func error(_ reason: DNSParseError.Reason, at offset: Int? = nil) -> DNSParseError {
        DNSParseError(reason, id: self.id, offset: offset ?? self.position)
    }

    @inline(__always)
    private func uint16(at offset: Int) -> UInt16 {
        UInt16(self.buffer[offset]) << 8 | UInt16(self.buffer[offset + 1])
    }

    @inline(__always)
    private func uint32(at offset: Int) -> UInt32 {
        UInt32(self.uint16(at: offset)) << 16 | UInt32(self.uint16(at: offset + 2))
    }

    mutating func readMessage() throws(DNSParseError) -> DNSMessage {
        if self.buffer.count >= 12 {
            self.id = self.uint16(at: 0)
        }
        guard self.buffer.count <= DNSMessage.maximumSize else { throw self.error(.messageTooLarge) }
        guard self.buffer.count >= 12 else { throw self.error(.truncated, at: self.buffer.count) }
        let header = DNSHeader(id: self.uint16(at: 0), flags: self.uint16(at: 2))
        let questionCount = Int(self.uint16(at: 4))
        let answerCount = Int(self.uint16(at: 6))
        let authorityCount = Int(self.uint16(at: 8))
        let additionalCount = Int(self.uint16(at: 10))
        // A question takes at least 5 bytes and a record 11: counts beyond that are lies, caught before
        // anything is allocated for them.
        let least = questionCount * 5 + (answerCount + authorityCount + additionalCount) * 11
        guard least <= self.buffer.count - 12 else { throw self.error(.countMismatch, at: 4) }
        self.position = 12

        var message = DNSMessage(header: header)
        if questionCount > 0 {
            message.questions.reserveCapacity(questionCount)
            for _ in 0..<questionCount {
                let name = try self.readName()
                guard self.position + 4 <= self.buffer.count else { throw self.error(.truncated) }
                let type = DNSRecordType(self.uint16(at: self.position))
                let recordClass = DNSClass(self.uint16(at: self.position + 2))
                self.position += 4
                message.questions.append(DNSQuestion(name: name, type: type, recordClass: recordClass))
            }
        }
        message.answers = try self.readRecords(answerCount, in: .answer, edns: &message.edns)
        message.authority = try self.readRecords(authorityCount, in: .authority, edns: &message.edns)
        message.additional = try self.readRecords(additionalCount, in: .additional, edns: &message.edns)
        // Bytes after the last record are ignored, as most servers do.
        return message
    }

    private mutating func readRecords(
        _ count: Int,
        in section: Section,
        edns: inout EDNS?
    ) throws(DNSParseError) -> [DNSRecord] {
        guard count > 0 else { return [] }
        var records: [DNSRecord] = []
        records.reserveCapacity(count)
        for _ in 0..<count {
            let start = self.position
            let name = try self.readName()
            guard self.position + 10 <= self.buffer.count else { throw self.error(.truncated) }
            let type = DNSRecordType(self.uint16(at: self.position))
            let recordClass = self.uint16(at: self.position + 2)
            let ttl = self.uint32(at: self.position + 4)
            let length = Int(self.uint16(at: self.position + 8))
            self.position += 10
            let end = self.position + length
            guard end <= self.buffer.count else { throw self.error(.truncated) }
            if type == .opt {
                guard section == .additional, edns == nil, name.isRoot else { throw self.error(.badOPT, at: start) }
                edns = try self.readOPT(payloadSize: recordClass, ttl: ttl, end: end)
            } else {
                let data = try self.readData(type, end: end)
                records.append(DNSRecord(name: name, recordClass: DNSClass(recordClass), ttl: ttl, data: data))
            }
            self.position = end
        }
        return records
    }

    /// RDATA from `position` to `end`, leaving `position` wherever it stopped.
    private mutating func readData(_ type: DNSRecordType, end: Int) throws(DNSParseError) -> DNSRecordData {
        let start = self.position
        let length = end - start
        switch type {
        case _ where length == 0:
            return .unknown(type: type, rdata: [])
        case .a where length == 4:
            let buffer = self.buffer
            return .a((buffer[start], buffer[start + 1], buffer[start + 2], buffer[start + 3]))
        case .aaaa where length == 16:
            return .aaaa(Array(UnsafeRawBufferPointer(rebasing: self.buffer[start..<end])))
        case .ns:
            return .ns(try self.readDataName(end: end))
        case .cname:
            return .cname(try self.readDataName(end: end))
        case .ptr:
            return .ptr(try self.readDataName(end: end))
        case .mx:
            guard length >= 3 else { throw self.error(.badRecordData) }
            let preference = self.uint16(at: start)
            self.position += 2
            return .mx(preference: preference, exchange: try self.readDataName(end: end))
        case .soa:
            let mname = try self.readName()
            let rname = try self.readName()
            guard self.position + 20 == end else { throw self.error(.badRecordData) }
            let at = self.position
            return .soa(
                mname: mname,
                rname: rname,
                serial: self.uint32(at: at),
                refresh: self.uint32(at: at + 4),
                retry: self.uint32(at: at + 8),
                expire: self.uint32(at: at + 12),
                minimum: self.uint32(at: at + 16)
            )
        case .txt:
            var strings: [[UInt8]] = []
            var offset = start
            while offset < end {
                let next = offset + 1 + Int(self.buffer[offset])
                guard next <= end else { throw self.error(.badRecordData, at: offset) }
                strings.append(Array(UnsafeRawBufferPointer(rebasing: self.buffer[(offset + 1)..<next])))
                offset = next
            }
            return .txt(strings)
        default:
            return .unknown(type: type, rdata: Array(UnsafeRawBufferPointer(rebasing: self.buffer[start..<end])))
        }
    }

    /// A name that must be all of the rest of the RDATA.
    private mutating func readDataName(end: Int) throws(DNSParseError) -> DNSName {
        let name = try self.readName()
        guard self.position == end else { throw self.error(.badRecordData) }
        return name
    }

    private mutating func readOPT(payloadSize: UInt16, ttl: UInt32, end: Int) throws(DNSParseError) -> EDNS {
        var edns = EDNS(
            udpPayloadSize: payloadSize,
            extendedRcode: UInt8(truncatingIfNeeded: ttl >> 24),
            version: UInt8(truncatingIfNeeded: ttl >> 16),
            dnssecOK: ttl & 0x8000 != 0
        )
        var offset = self.position
        while offset < end {
            guard offset + 4 <= end else { throw self.error(.badOPT, at: offset) }
            let code = self.uint16(at: offset)
            let dataEnd = offset + 4 + Int(self.uint16(at: offset + 2))
            guard dataEnd <= end else { throw self.error(.badOPT, at: offset) }
            let data = UnsafeRawBufferPointer(rebasing: self.buffer[(offset + 4)..<dataEnd])
            // FAMILY 0 with SOURCE 0 is a client asking that its address not be used (RFC 7871
            // §7.1.2): no subnet, kept as an option like any other.
            let optOut = data.count == 4 && data.allSatisfy { $0 == 0 }
            if code == EDNSOption.clientSubnetCode, !optOut {
                // A second ECS option could only contradict the first.
                guard edns.clientSubnet == nil, let subnet = ClientSubnet.decode(data) else {
                    throw self.error(.badClientSubnet, at: offset)
                }
                edns.clientSubnet = subnet
            } else {
                edns.options.append(EDNSOption(code: code, data: Array(data)))
            }
            offset = dataEnd
        }
        return edns
    }

    /// Reads a possibly compressed name at `position` and moves past it.
    ///
    /// A first pass checks the labels and pointers and measures the name; a second copies it into an array of
    /// exactly that size. Each pointer must point strictly before the start of the piece of name it ends,
    /// so positions only decrease and no chain of pointers can loop.
    mutating func readName() throws(DNSParseError) -> DNSName {
        let buffer = self.buffer
        let start = self.position
        guard start < buffer.count else { throw self.error(.truncated) }
        if buffer[start] == 0 {
            self.position = start + 1
            return .root
        }
        var offset = start
        var pieceStart = start
        var length = 1
        var jumps = 0
        var end: Int?
        while true {
            guard offset < buffer.count else { throw self.error(.truncated, at: offset) }
            let byte = buffer[offset]
            switch byte & 0xC0 {
            case 0:
                if byte == 0 {
                    self.position = end ?? offset + 1
                    return DNSName(uncheckedWire: self.copyName(from: start, length: length))
                }
                length += 1 + Int(byte)
                guard length <= 255 else { throw self.error(.nameTooLong, at: offset) }
                offset += 1 + Int(byte)
            case 0xC0:
                guard offset + 1 < buffer.count else { throw self.error(.truncated, at: offset) }
                let target = Int(self.uint16(at: offset) & 0x3FFF)
                jumps += 1
                guard target >= 12, target < pieceStart, jumps <= 127 else {
                    throw self.error(.badPointer, at: offset)
                }
                if end == nil {
                    end = offset + 2
                }
                offset = target
                pieceStart = target
            default:
                throw self.error(.labelTooLong, at: offset)
            }
        }
    }

    /// The name `readName` has validated, decompressed into `length` bytes.
    private func copyName(from start: Int, length: Int) -> [UInt8] {
        let buffer = self.buffer
        return [UInt8](unsafeUninitializedCapacity: length) { wire, count in
            var offset = start
            var written = 0
            while true {
                let byte = buffer[offset]
                if byte & 0xC0 == 0xC0 {
                    offset = Int(byte & 0x3F) << 8 | Int(buffer[offset + 1])
                    continue
                }
                let size = 1 + Int(byte)
                UnsafeMutableRawBufferPointer(rebasing: UnsafeMutableRawBufferPointer(wire)[written..<(written + size)])
                    .copyMemory(from: UnsafeRawBufferPointer(rebasing: buffer[offset..<(offset + size)]))
                written += size
                if byte == 0 { break }
                offset += size
            }
            count = written
        }
    }
}

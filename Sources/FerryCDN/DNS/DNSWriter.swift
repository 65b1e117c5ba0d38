/// Writes a message, compressing names (RFC 1035 §4.1.4) against every name and name suffix written before.
struct DNSWriter {
    var bytes: [UInt8]

    /// Where each name suffix written out in full starts, and its uncompressed length: a cheap first test before
    /// comparing bytes.
    private var suffixes: [(offset: UInt16, length: UInt16)] = []

    /// Enough for any sensible answer; past it names are still written, only compressed less.
    private static let maximumSuffixes = 128

    init(reusing buffer: inout [UInt8]) {
        self.bytes = []
        swap(&self.bytes, &buffer)
        self.bytes.removeAll(keepingCapacity: true)
        if self.bytes.capacity < 512 {
            self.bytes.reserveCapacity(512)
        }
    }

    mutating func write(_ message: DNSMessage, limit: Int) {
        var header = message.header
        self.bytes.append(contentsOf: repeatElement(0, count: 12))
        var questionCount = 0
        for question in message.questions {
            self.write(question.name)
            self.append(question.type.rawValue)
            self.append(question.recordClass.rawValue)
            questionCount += 1
        }
        // Set when something is left out, never cleared: a TC bit the caller set stays.
        var leftOut = self.bytes.count > limit
        if leftOut {
            self.rewind(to: 12)
            questionCount = 0
        }
        let optLength = message.edns?.wireLength ?? 0
        let afterQuestions = self.bytes.count
        var counts = (answer: 0, authority: 0, additional: 0)
        if !leftOut {
            let fitted =
                self.write(message.answers, count: &counts.answer, limit: limit - optLength)
                && self.write(message.authority, count: &counts.authority, limit: limit - optLength)
                && self.write(message.additional, count: &counts.additional, limit: limit - optLength)
            if !fitted {
                self.rewind(to: afterQuestions)
                counts = (0, 0, 0)
                leftOut = true
            }
        }
        if leftOut {
            header.truncated = true
        }
        if let edns = message.edns, self.bytes.count + optLength <= limit {
            self.write(edns)
            counts.additional += 1
        }
        self.set(header.id, at: 0)
        self.set(header.flags, at: 2)
        self.set(UInt16(truncatingIfNeeded: questionCount), at: 4)
        self.set(UInt16(truncatingIfNeeded: counts.answer), at: 6)
        self.set(UInt16(truncatingIfNeeded: counts.authority), at: 8)
        self.set(UInt16(truncatingIfNeeded: counts.additional), at: 10)
    }

    /// Writes records while they fit under `limit`; false as soon as one does not.
    private mutating func write(_ records: [DNSRecord], count: inout Int, limit: Int) -> Bool {
        for record in records where record.type != .opt {
            self.write(record)
            guard self.bytes.count <= limit else { return false }
            count += 1
        }
        return true
    }

    /// Drops everything from `size` on, and the compression targets that were in it.
    private mutating func rewind(to size: Int) {
        self.bytes.removeSubrange(size...)
        while let last = self.suffixes.last, Int(last.offset) >= size {
            self.suffixes.removeLast()
        }
    }

    @inline(__always)
    private mutating func append(_ value: UInt16) {
        self.bytes.append(UInt8(truncatingIfNeeded: value >> 8))
        self.bytes.append(UInt8(truncatingIfNeeded: value))
    }

    @inline(__always)
    private mutating func append(_ value: UInt32) {
        self.append(UInt16(truncatingIfNeeded: value >> 16))
        self.append(UInt16(truncatingIfNeeded: value))
    }

    private mutating func set(_ value: UInt16, at offset: Int) {
        self.bytes[offset] = UInt8(truncatingIfNeeded: value >> 8)
        self.bytes[offset + 1] = UInt8(truncatingIfNeeded: value)
    }

    private mutating func write(_ record: DNSRecord) {
        self.write(record.name)
        self.append(record.type.rawValue)
        self.append(record.recordClass.rawValue)
        self.append(record.ttl)
        let lengthOffset = self.bytes.count
        self.append(UInt16(0))
        switch record.data {
        case .a(let address):
            self.bytes.append(address.0)
            self.bytes.append(address.1)
            self.bytes.append(address.2)
            self.bytes.append(address.3)
        case .aaaa(let address):
            self.bytes.append(contentsOf: address)
        case .ns(let name), .cname(let name), .ptr(let name):
            self.write(name)
        case .mx(let preference, let exchange):
            self.append(preference)
            self.write(exchange)
        case .soa(let mname, let rname, let serial, let refresh, let retry, let expire, let minimum):
            self.write(mname)
            self.write(rname)
            self.append(serial)
            self.append(refresh)
            self.append(retry)
            self.append(expire)
            self.append(minimum)
        case .txt(let strings):
            for string in strings {
                self.writeCharacterStrings(string)
            }
        case .unknown(_, let rdata):
            self.bytes.append(contentsOf: rdata)
        }
        // Over 65535 bytes of RDATA cannot fit any message, so `write(_:limit:)` drops it anyway.
        self.set(UInt16(truncatingIfNeeded: self.bytes.count - lengthOffset - 2), at: lengthOffset)
    }

    /// One TXT string, split into 255-byte character-strings when longer.
    private mutating func writeCharacterStrings(_ string: [UInt8]) {
        var start = 0
        repeat {
            let end = min(start + 255, string.count)
            self.bytes.append(UInt8(end - start))
            self.bytes.append(contentsOf: string[start..<end])
            start = end
        } while start < string.count
    }

    private mutating func write(_ edns: EDNS) {
        self.bytes.append(0)
        self.append(DNSRecordType.opt.rawValue)
        self.append(edns.udpPayloadSize)
        self.bytes.append(edns.extendedRcode)
        self.bytes.append(edns.version)
        self.append(UInt16(edns.dnssecOK ? 0x8000 : 0))
        self.append(UInt16(truncatingIfNeeded: edns.wireLength - 11))
        if let subnet = edns.clientSubnet {
            self.append(EDNSOption.clientSubnetCode)
            self.append(UInt16(4 + subnet.address.count))
            self.append(subnet.family.rawValue)
            self.bytes.append(subnet.sourcePrefixLength)
            self.bytes.append(subnet.scopePrefixLength)
            self.bytes.append(contentsOf: subnet.address)
        }
        for option in edns.options {
            self.append(option.code)
            self.append(UInt16(truncatingIfNeeded: option.data.count))
            self.bytes.append(contentsOf: option.data)
        }
    }

    /// Writes `name`, ending in a pointer to the longest suffix of it already in the message.
    private mutating func write(_ name: DNSName) {
        let wire = name.wire
        var start = 0
        while wire[start] != 0 {
            if let target = self.find(wire, from: start) {
                self.append(0xC000 | target)
                return
            }
            let offset = self.bytes.count
            if offset <= 0x3FFF, self.suffixes.count < Self.maximumSuffixes {
                self.suffixes.append((UInt16(offset), UInt16(wire.count - start)))
            }
            let end = start + 1 + Int(wire[start])
            self.bytes.append(contentsOf: wire[start..<end])
            start = end
        }
        self.bytes.append(0)
    }

    /// Where the suffix of `wire` from `start` was written before, if it was.
    private func find(_ wire: [UInt8], from start: Int) -> UInt16? {
        let length = wire.count - start
        for suffix in self.suffixes where Int(suffix.length) == length {
            if self.matches(wire, from: start, at: Int(suffix.offset)) {
                return suffix.offset
            }
        }
        return nil
    }

    /// Whether the name written at `offset`, following its pointers, is the suffix of `wire` from `start`,
    /// ignoring case.
    private func matches(_ wire: [UInt8], from start: Int, at offset: Int) -> Bool {
        var index = start
        var offset = offset
        while true {
            var byte = self.bytes[offset]
            while byte & 0xC0 == 0xC0 {
                offset = Int(byte & 0x3F) << 8 | Int(self.bytes[offset + 1])
                byte = self.bytes[offset]
            }
            guard byte == wire[index] else { return false }
            if byte == 0 { return true }
            for step in 1...Int(byte) where DNSName.fold(self.bytes[offset + step]) != DNSName.fold(wire[index + step])
            {
                return false
            }
            index += 1 + Int(byte)
            offset += 1 + Int(byte)
        }
    }
}

import Foundation

/// One HTTP response as a test reads it off a socket.
struct HTTPAnswer {
    var status: Int
    var headers: [(String, String)]
    var body: String

    func header(_ name: String) -> String? {
        self.headers.first { $0.0.lowercased() == name.lowercased() }?.1
    }
}

extension Client {
    /// Sends `request` as given and reads one response framed by Content-Length or chunked; nil
    /// when the connection ends before a whole response.
    func exchange(_ request: String, headRequest: Bool = false) -> HTTPAnswer? {
        self.send(Array(request.utf8))
        return self.readResponse(headRequest: headRequest)
    }

    func get(_ path: String, host: String = "ferry.test", headers: String = "") -> HTTPAnswer? {
        self.exchange("GET \(path) HTTP/1.1\r\nHost: \(host)\r\n\(headers)\r\n")
    }

    func readResponse(headRequest: Bool = false) -> HTTPAnswer? {
        var head: [UInt8] = []
        var byte: UInt8 = 0
        while !head.ends(with: [13, 10, 13, 10]) {
            guard read(self.fd, &byte, 1) == 1 else { return nil }
            head.append(byte)
        }
        let lines = String(decoding: head.dropLast(4), as: UTF8.self).components(separatedBy: "\r\n")
        let statusParts = lines[0].split(separator: " ")
        guard statusParts.count >= 2, let status = Int(statusParts[1]) else { return nil }
        let headers: [(String, String)] = lines.dropFirst().compactMap { line in
            guard let colon = line.firstIndex(of: ":") else { return nil }
            return (String(line[..<colon]), line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces))
        }
        var answer = HTTPAnswer(status: status, headers: headers, body: "")
        if headRequest || status == 204 || status == 304 { return answer }
        if answer.header("transfer-encoding")?.lowercased() == "chunked" {
            var body: [UInt8] = []
            while true {
                let sizeLine = self.line().trimmingCharacters(in: .whitespacesAndNewlines)
                guard let size = Int(sizeLine.split(separator: ";")[0], radix: 16) else { return nil }
                if size == 0 {
                    while !self.line().trimmingCharacters(in: .whitespacesAndNewlines).isEmpty {}
                    break
                }
                body += self.receive(size)
                _ = self.receive(2)
            }
            answer.body = String(decoding: body, as: UTF8.self)
        } else if let length = answer.header("content-length").flatMap(Int.init) {
            let body = self.receive(length)
            guard body.count == length else { return nil }
            answer.body = String(decoding: body, as: UTF8.self)
        } else {
            answer.body = String(decoding: self.receive(Int.max), as: UTF8.self)
        }
        return answer
    }
}

extension Array where Element == UInt8 {
    fileprivate func ends(with suffix: [UInt8]) -> Bool {
        self.count >= suffix.count && Array(self.suffix(suffix.count)) == suffix
    }
}

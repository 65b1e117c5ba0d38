import FerryHTTP

/// Turns a request target into a path relative to the served root, refusing every way out.
public enum RequestPath {
    struct Refusal: Error, Equatable {
        var status: HTTPStatus
        var message: String
    }

    /// Returns the root-relative path (`"."` for the root itself).
    static func resolve(_ target: String) -> Result<String, Refusal> {
        if let plain = self.plainPath(target) { return .success(plain) }
        var path = Substring(target)
        // absolute-form (`GET http://host/a HTTP/1.1`): keep only the path.
        for scheme in ["http://", "https://"] where path.lowercased().hasPrefix(scheme) {
            path = path.dropFirst(scheme.count)
            path = path.firstIndex(of: "/").map { path[$0...] } ?? "/"
        }
        guard path.first == "/" else {
            return .failure(
                .init(status: .badRequest, message: "request target '\(target.prefix(200))' must start with '/'")
            )
        }
        if let end = path.firstIndex(where: { $0 == "?" || $0 == "#" }) { path = path[..<end] }
        guard let decoded = percentDecode(path) else {
            return .failure(
                .init(status: .badRequest, message: "request target '\(target.prefix(200))' has a bad percent-escape")
            )
        }
        guard !decoded.contains(0) else {
            return .failure(
                .init(status: .badRequest, message: "request target '\(target.prefix(200))' contains a NUL byte")
            )
        }
        var segments: [Substring] = []
        for segment in String(decoding: decoded, as: UTF8.self).split(separator: "/", omittingEmptySubsequences: true) {
            switch segment {
            case ".": continue
            case "..":
                return .failure(
                    .init(
                        status: .forbidden,
                        message: "request target '\(target.prefix(200))' climbs out of the served root with '..'"
                    )
                )
            default:
                if segment.contains("\\") {
                    return .failure(
                        .init(
                            status: .forbidden,
                            message: "request target '\(target.prefix(200))' contains a backslash"
                        )
                    )
                }
                segments.append(segment)
            }
        }
        return .success(segments.isEmpty ? "." : segments.joined(separator: "/"))
    }

    /// The common case without decoding: `/a/b.txt` made only of letters, digits, `-`, `_`, `.`
    /// and single slashes, with no segment starting with a dot.
    private static func plainPath(_ target: String) -> String? {
        let utf8 = target.utf8
        guard utf8.first == UInt8(ascii: "/"), utf8.count > 1 else { return nil }
        var previous = UInt8(ascii: "/")
        for byte in utf8.dropFirst() {
            switch byte {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
                UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "_"):
                break
            case UInt8(ascii: "."), UInt8(ascii: "/"):
                if previous == UInt8(ascii: "/") { return nil }
            default:
                return nil
            }
            previous = byte
        }
        guard previous != UInt8(ascii: "/") else { return nil }
        return String(target.dropFirst())
    }

    /// Decodes `%XX` escapes; `nil` for a malformed one.
    static func percentDecode(_ string: Substring) -> [UInt8]? {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(string.utf8.count)
        var iterator = string.utf8.makeIterator()
        while let byte = iterator.next() {
            guard byte == UInt8(ascii: "%") else {
                bytes.append(byte)
                continue
            }
            guard let high = iterator.next().flatMap(HexDigit.value), let low = iterator.next().flatMap(HexDigit.value)
            else {
                return nil
            }
            bytes.append(high << 4 | low)
        }
        return bytes
    }
}

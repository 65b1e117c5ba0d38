import Foundation

/// The resources a page names, found as a browser finds them: in HTML, `<img src>`,
/// `<script src>` and `<link rel=stylesheet href>` (also `rel=icon` and `rel=preload`); in CSS,
/// `url(...)` and `@import`. References come back as written, in document order, for the caller
/// to resolve against the document's address.
public enum PageResources {
    public static func inHTML(_ text: String) -> [String] {
        var found: [String] = []
        let bytes = Array(text.utf8)
        var index = 0
        while let open = bytes[index...].firstIndex(of: UInt8(ascii: "<")) {
            index = open + 1
            if bytes[index...].starts(with: "!--".utf8) {
                // A comment names nothing: skip to its end.
                guard let end = Self.find("-->", in: bytes, from: index + 3) else { break }
                index = end + 3
                continue
            }
            guard let close = bytes[index...].firstIndex(of: UInt8(ascii: ">")) else { break }
            let tag = Self.tag(bytes[index..<close])
            index = close + 1
            switch tag.name {
            case "img", "script":
                if let source = tag.attributes["src"], !source.isEmpty { found.append(source) }
            case "link":
                let relations = (tag.attributes["rel"] ?? "").lowercased().split(separator: " ")
                if relations.contains(where: { ["stylesheet", "icon", "preload"].contains($0) }),
                    let reference = tag.attributes["href"], !reference.isEmpty
                {
                    found.append(reference)
                }
            default:
                break
            }
        }
        return found
    }

    public static func inCSS(_ text: String) -> [String] {
        var found: [String] = []
        var rest = Substring(text)
        while true {
            let url = rest.range(of: "url(")
            let atImport = rest.range(of: "@import")
            guard let first = [url, atImport].compactMap({ $0 }).min(by: { $0.lowerBound < $1.lowerBound }) else {
                break
            }
            var after = rest[first.upperBound...].drop { $0.isWhitespace }
            var reference: Substring?
            if let quote = after.first, quote == "\"" || quote == "'" {
                after = after.dropFirst()
                guard let end = after.firstIndex(of: quote) else { break }
                reference = after[..<end]
                rest = after[end...].dropFirst()
            } else if first == url, let end = after.firstIndex(of: ")") {
                reference = after[..<end]
                rest = after[end...]
            } else {
                // `@import url(...)`: its url( is the next match.
                rest = after
            }
            if let reference = reference?.trimmingCharacters(in: .whitespaces), !reference.isEmpty,
                !reference.hasPrefix("data:")
            {
                found.append(reference)
            }
        }
        return found
    }

    /// A start tag's name (lowercased) and attributes (names lowercased; values unquoted).
    private static func tag(_ bytes: ArraySlice<UInt8>) -> (name: String, attributes: [String: String]) {
        let text = String(decoding: bytes, as: UTF8.self)
        var scanner = Substring(text)
        let name = scanner.prefix { !$0.isWhitespace && $0 != "/" }.lowercased()
        scanner = scanner.dropFirst(name.count)
        var attributes: [String: String] = [:]
        while true {
            scanner = scanner.drop { $0.isWhitespace || $0 == "/" }
            guard !scanner.isEmpty else { break }
            let attribute = scanner.prefix { !$0.isWhitespace && $0 != "=" && $0 != "/" }.lowercased()
            guard !attribute.isEmpty else {
                scanner = scanner.dropFirst()
                continue
            }
            scanner = scanner.dropFirst(attribute.count).drop { $0.isWhitespace }
            guard scanner.first == "=" else {
                attributes[attribute] = attributes[attribute] ?? ""
                continue
            }
            scanner = scanner.dropFirst().drop { $0.isWhitespace }
            var value: Substring
            if let quote = scanner.first, quote == "\"" || quote == "'" {
                let inner = scanner.dropFirst()
                let end = inner.firstIndex(of: quote) ?? inner.endIndex
                value = inner[..<end]
                scanner = end == inner.endIndex ? inner[end...] : inner[inner.index(after: end)...]
            } else {
                value = scanner.prefix { !$0.isWhitespace }
                scanner = scanner.dropFirst(value.count)
            }
            if attributes[attribute] == nil {
                attributes[attribute] = String(value).replacingEntities()
            }
        }
        return (name, attributes)
    }

    private static func find(_ needle: String, in bytes: [UInt8], from start: Int) -> Int? {
        let pattern = Array(needle.utf8)
        guard bytes.count >= pattern.count, start <= bytes.count - pattern.count else { return nil }
        for index in start...(bytes.count - pattern.count)
        where bytes[index..<(index + pattern.count)].elementsEqual(pattern) {
            return index
        }
        return nil
    }
}

extension String {
    /// The character references an attribute value may hold in a URL.
    fileprivate func replacingEntities() -> String {
        guard self.contains("&") else { return self }
        return self.replacingOccurrences(of: "&amp;", with: "&").replacingOccurrences(of: "&quot;", with: "\"")
            .replacingOccurrences(of: "&#39;", with: "'").replacingOccurrences(of: "&lt;", with: "<")
            .replacingOccurrences(of: "&gt;", with: ">")
    }
}

import Foundation

/// Apache Traffic Control's coverage zone file (CZF), so that a Traffic Router's map can be used as
/// it is:
///
/// ```json
/// {
///     "revision": "2024-05-01", "customerName": "example",
///     "coverageZones": {
///         "east": {
///             "coordinates": {"latitude": 1.1, "longitude": 2.2},
///             "network": ["192.168.8.0/24", "192.168.9.0/24"],
///             "network6": ["1234:5678::/64"]
///         }
///     }
/// }
/// ```
///
/// Each zone is named after the cache group (here, region) that serves it; `network` lists IPv4
/// networks and `network6` IPv6 ones, either list may be missing. `coordinates` (for Traffic
/// Router's geographic fallback) and other keys are ignored. As in Traffic Router, one bad network
/// refuses the whole file rather than quietly sending its clients elsewhere; unlike it, a network
/// of the wrong family for its list is refused too (Traffic Router files it where it never
/// matches), and so is one listed for two zones.
public struct CoverageZoneFile: Sendable {
    public var revision: String?
    public var customerName: String?
    public var zones: CoverageZones

    /// Parses the file's JSON text.
    public static func parse(json: some Collection<UInt8>) throws(CoverageZoneError) -> CoverageZoneFile {
        let object: Any
        do {
            object = try JSONSerialization.jsonObject(with: Data(json))
        } catch {
            throw .malformed("not JSON (\(error.localizedDescription))")
        }
        guard let root = object as? [String: Any] else { throw .malformed("the top level is not an object") }
        guard let zones = root["coverageZones"] else { throw .malformed("there is no \"coverageZones\" object") }
        guard let zones = zones as? [String: Any] else { throw .malformed("\"coverageZones\" is not an object") }
        var entries: [(network: IPNetwork, region: String)] = []
        for (zone, body) in zones.sorted(by: { $0.key < $1.key }) {
            guard let body = body as? [String: Any] else {
                throw .malformed("coverage zone \"\(zone)\" is not an object")
            }
            for (list, ipv6) in [("network", false), ("network6", true)] {
                guard let value = body[list], !(value is NSNull) else { continue }
                guard let items = value as? [Any] else {
                    throw .malformed("\"\(list)\" of coverage zone \"\(zone)\" is not an array")
                }
                for item in items {
                    guard let text = item as? String else {
                        throw .badNetwork(zone: zone, list: list, entry: "\(item)", reason: "is not a string")
                    }
                    entries.append((try Self.network(text, ipv6: ipv6, zone: zone, list: list), zone))
                }
            }
        }
        return CoverageZoneFile(
            revision: Self.text(root["revision"]),
            customerName: Self.text(root["customerName"]),
            zones: try CoverageZones(entries)
        )
    }

    private static func network(
        _ text: String,
        ipv6: Bool,
        zone: String,
        list: String
    ) throws(CoverageZoneError) -> IPNetwork {
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        let family = ipv6 ? "IPv6" : "IPv4"
        guard let network = IPNetwork(trimmed) else {
            throw .badNetwork(zone: zone, list: list, entry: text, reason: "is not an \(family) network in CIDR form")
        }
        guard trimmed.contains(":") == ipv6 else {
            throw .badNetwork(zone: zone, list: list, entry: text, reason: "is not an \(family) network")
        }
        return network
    }

    /// `revision` is a string in Traffic Control's own files; a number is taken as its text.
    private static func text(_ value: Any?) -> String? {
        switch value {
        case let string as String: string
        case let number as NSNumber: number.stringValue
        default: nil
        }
    }
}

extension CoverageZones {
    /// Parses Apache Traffic Control's coverage zone file (see ``CoverageZoneFile``).
    public static func parseTrafficControl(json: some Collection<UInt8>) throws(CoverageZoneError) -> CoverageZones {
        try CoverageZoneFile.parse(json: json).zones
    }
}

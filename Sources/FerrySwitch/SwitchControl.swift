import Foundation

/// The requests a switch's control socket takes, one line each:
///
///     stats                 the backends' state and counters, as JSON
///     drain ADDRESS         the backend takes nothing new; what it has open finishes
///     ready ADDRESS         the backend takes work again
public enum SwitchControl {
    /// The answer to `stats`, as JSON with sorted keys: what `ferry switch stats` and the control
    /// API read.
    public struct Stats: Codable, Sendable {
        public struct Backend: Codable, Sendable {
            public var address: String
            /// Empty for the default group.
            public var group: String
            public var weight: Int
            public var up: Bool
            public var draining: Bool
            /// Connections open now.
            public var active: Int
            public var total: Int
            public var failures: Int
            /// Its answers' latency, a moving average (absent from switches before it).
            public var latencyMilliseconds: Double?

            enum CodingKeys: String, CodingKey {
                case address, group, weight, up, draining, active, total, failures
                case latencyMilliseconds = "latency_ms"
            }
        }

        public var backends: [Backend]
    }

    public static func answer(_ line: String, balancer: Balancer) -> String {
        let words = line.split(separator: " ").map(String.init)
        switch (words.first, words.count) {
        case ("stats", 1):
            let stats = Stats(
                backends: balancer.backends.map { backend in
                    Stats.Backend(
                        address: backend.spec.address.description,
                        group: backend.spec.group ?? "",
                        weight: backend.spec.weight,
                        up: backend.up,
                        draining: backend.draining,
                        active: backend.active,
                        total: backend.total,
                        failures: backend.failures,
                        latencyMilliseconds: (backend.latencyMilliseconds * 1000).rounded() / 1000
                    )
                }
            )
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys]
            let data = try? encoder.encode(stats)
            return data.map { String(decoding: $0, as: UTF8.self) } ?? "error: cannot encode the stats"
        case ("drain", 2), ("ready", 2):
            guard let index = balancer.index(of: words[1]) else {
                let known = balancer.backends.map(\.spec.address.description).joined(separator: ", ")
                return "error: no backend \(words[1]); the switch has \(known)"
            }
            let draining = words[0] == "drain"
            balancer.setDraining(index, draining)
            let open = balancer.backends[index].active
            return draining ? "ok draining \(words[1]) (\(open) open)" : "ok \(words[1]) takes work again"
        default:
            return "error: unknown request '\(line)'; send: stats, drain ADDRESS or ready ADDRESS"
        }
    }
}

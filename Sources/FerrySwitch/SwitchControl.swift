import Foundation

/// The requests a switch's control socket takes, one line each:
///
///     stats                 the backends' state and counters, as JSON
///     drain ADDRESS         the backend takes nothing new; what it has open finishes
///     ready ADDRESS         the backend takes work again
public enum SwitchControl {
    public static func answer(_ line: String, balancer: Balancer) -> String {
        let words = line.split(separator: " ").map(String.init)
        switch (words.first, words.count) {
        case ("stats", 1):
            let backends = balancer.backends.map { backend -> [String: Any] in
                [
                    "address": backend.spec.address.description, "group": backend.spec.group ?? "",
                    "weight": backend.spec.weight, "up": backend.up, "draining": backend.draining,
                    "active": backend.active, "total": backend.total, "failures": backend.failures,
                    "latency_ms": (backend.latencyMilliseconds * 1000).rounded() / 1000,
                ]
            }
            let data = try? JSONSerialization.data(withJSONObject: ["backends": backends], options: [.sortedKeys])
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

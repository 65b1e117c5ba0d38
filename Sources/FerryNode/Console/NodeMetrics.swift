import Foundation
import Metrics
import Prometheus

/// The process's metrics in Prometheus's registry: everything counted through swift-metrics (the
/// file server's, the switch's, the kv service's, object calls') is read out at `GET /metrics`.
public enum NodeMetrics {
    /// Made, and bootstrapped into swift-metrics, on first use: a command that serves calls
    /// ``bootstrap()`` before it makes anything that counts.
    public static let registry: PrometheusCollectorRegistry = {
        let registry = PrometheusCollectorRegistry()
        MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: registry))
        return registry
    }()

    public static func bootstrap() { _ = self.registry }

    /// The text format (version 0.0.4) Prometheus scrapes, each metric with its `# HELP` line.
    public static func exposition() -> [UInt8] {
        var buffer: [UInt8] = []
        buffer.reserveCapacity(16 * 1024)
        self.registry.emit(into: &buffer)
        var text = ""
        text.reserveCapacity(buffer.count + 2048)
        for line in String(decoding: buffer, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false) {
            if line.hasPrefix("# TYPE "), let name = line.dropFirst("# TYPE ".count).split(separator: " ").first {
                text += "# HELP \(name) \(self.help[String(name)] ?? name.replacingOccurrences(of: "_", with: " "))\n"
            }
            text += line
            text += "\n"
        }
        return Array(text.utf8.dropLast())
    }

    /// What each metric counts, for `# HELP`.
    static let help: [String: String] = [
        "ferry_http_requests_served_total": "HTTP requests the file server answered.",
        "ferry_http_requests_rejected_total": "HTTP requests refused because every worker was busy and the queue full.",
        "ferry_http_requests_cancelled_total": "HTTP requests cancelled while they were served.",
        "ferry_http_urgent_data_total": "TCP urgent (out-of-band) bytes received.",
        "ferry_http_connections_timed_out_total": "Client connections closed because a header or idle timeout ran out.",
        "ferry_http_queue_depth": "HTTP requests waiting for a worker.",
        "ferry_http_busy_workers": "Workers serving a request now.",
        "ferry_http_request_duration_seconds": "Time to answer an HTTP request at the file server.",
        "ferry_switch_request_duration_seconds": "Time from a request's arrival at the l7 switch to its answer's end.",
        "ferry_kv_request_duration_seconds": "Time to answer a kv request (a write: until its fsync).",
        "ferry_object_call_duration_seconds": "Time to answer an object call at its node.",
    ]
}

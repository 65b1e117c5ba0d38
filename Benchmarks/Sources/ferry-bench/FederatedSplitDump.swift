import FerryMigration
import Foundation

/// `ferry-bench federated-split --data FILE --split SPLIT --seed N --nodes N`: the held-out rows
/// and each node's rows exactly as `ferry learn` splits them, as one JSON object
/// (`{"test": [...], "shards": [[...], ...]}`), so that Benchmarks/federated.sh gives Flower and
/// centralized training the very same data.
enum FederatedSplitDump {
    static func run(_ arguments: [String]) throws {
        var data = "Examples/digits/digits.bin"
        var split = "iid"
        var seed: UInt64 = 1
        var nodes = 3
        try parseFlags(arguments) { flag, value in
            switch flag {
            case "--data": data = value
            case "--split": split = value
            case "--seed": seed = UInt64(value) ?? seed
            case "--nodes": nodes = Int(value) ?? nodes
            default: return false
            }
            return true
        }
        let (test, shards) = try FederatedSplit(parsing: split).split(
            try LabeledImages(path: data),
            nodes: nodes,
            seed: seed
        )
        let json = try JSONSerialization.data(withJSONObject: ["test": test, "shards": shards])
        print(String(decoding: json, as: UTF8.self))
    }
}

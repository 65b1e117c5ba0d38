// swift-tools-version: 6.0
// libFuzzer harnesses for Ferry's parsers, built apart from the package (a fuzz target has no
// main of its own): Benchmarks/fuzz.sh builds and runs them.
import PackageDescription

let package = Package(
    name: "ferry-fuzz",
    dependencies: [.package(path: "../..")],
    targets: [
        // libFuzzer's driver, which each harness's entry runs.
        .target(name: "FuzzDriver"),
        // HTTP/1.1 request heads, response heads and chunked bodies, as the file server and the
        // switch read them from a client or a backend.
        harness("fuzz-http", ["FerryHTTP"]),
        // FerryWire: frame headers, every message's payload and object values, as a server reads
        // them from any peer (before TLS, from anyone who can reach a port; after, from members).
        harness("fuzz-wire", ["FerryWire", "FerryEndpoints", "FerryKV"]),
        // WIT interfaces, as `ferry stubs` and object servers read them.
        harness("fuzz-wit", ["FerryObjects", "FerryWire"]),
        // The YAML configurations of the switch, the superserver and the redirector.
        harness("fuzz-config", ["FerryConfiguration", "FerrySwitch", "FerrySuperserver", "FerryCDN"]),
        // Guest snapshots and signed modules' signature sections, as a node takes them from a peer.
        harness("fuzz-snapshot", ["FerryGuest", "FerryMigration"]),
        // DNS packets, parsed, written back and answered by the redirector.
        harness("fuzz-dns", ["FerryCDN"]),
        // OCI bundles' config.json.
        harness("fuzz-oci", ["FerryContainer"]),
    ]
)

/// A harness: an executable without `main` (libFuzzer's driver is its entry), linked with lld,
/// which the sanitizer runtime needs.
func harness(_ name: String, _ products: [String]) -> Target {
    .executableTarget(
        name: name,
        dependencies: ["FuzzDriver"] + products.map { .product(name: $0, package: "main") },
        swiftSettings: [.unsafeFlags(["-parse-as-library"])],
        linkerSettings: [.unsafeFlags(["-use-ld=lld"])]
    )
}

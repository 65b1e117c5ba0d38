// swift-tools-version: 6.0
// libFuzzer harnesses for Ferry's parsers, built apart from the package (a fuzz target has no
// main of its own): Benchmarks/fuzz.sh builds and runs them.
import PackageDescription

let package = Package(
    name: "ferry-fuzz",
    dependencies: [.package(path: "../..")],
    targets: [
        // HTTP/1.1 request heads, response heads and chunked bodies, as the file server and the
        // switch read them from a client or a backend.
        .executableTarget(
            name: "fuzz-http",
            dependencies: [.product(name: "FerryHTTP", package: "main")],
            swiftSettings: [.unsafeFlags(["-parse-as-library"])],
            linkerSettings: [.unsafeFlags(["-use-ld=lld"])]
        ),
        // FerryWire: frame headers, every message's payload and object values, as a server reads
        // them from any peer (before TLS, from anyone who can reach a port; after, from members).
        .executableTarget(
            name: "fuzz-wire",
            dependencies: [
                .product(name: "FerryWire", package: "main"),
                .product(name: "FerryEndpoints", package: "main"),
                .product(name: "FerryKV", package: "main"),
            ],
            swiftSettings: [.unsafeFlags(["-parse-as-library"])],
            linkerSettings: [.unsafeFlags(["-use-ld=lld"])]
        ),
    ]
)

// swift-tools-version:6.0
import PackageDescription

// Foundation's static archives, linked after our modules (which were built against the shared
// libraries): lld resolves archives in any order, and these are what static Foundation needs.
let staticFoundation = ["-l_FoundationICU", "-l_FoundationCollections", "-l_FoundationCShims", "-lCoreFoundation"]

/// The HTTP parsers and the switch's loops run on one thread each and touch a message a few
/// dozen times: the runtime's check that no two accesses to a class's property overlap (those
/// inside ByteBuffer's inlined code too) took 8% of a proxied request's instructions under
/// callgrind. The file server's and the kv service's loops mark their classes' properties
/// `@exclusivity(unchecked)` one by one instead: their modules hold much besides the loops.
let exclusivityUnchecked = SwiftSetting.unsafeFlags(["-enforce-exclusivity=unchecked"])

let package = Package(
    name: "Ferry",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "ferry", targets: ["ferry"]),
        .library(name: "FerryWire", targets: ["FerryWire"]),
        .library(name: "FerryHTTP", targets: ["FerryHTTP"]),
        .library(name: "FerryServer", targets: ["FerryServer"]),
        .library(name: "FerryKV", targets: ["FerryKV"]),
        .library(name: "FerrySuperserver", targets: ["FerrySuperserver"]),
        .library(name: "FerryEndpoints", targets: ["FerryEndpoints"]),
        .library(name: "FerryGuest", targets: ["FerryGuest"]),
        .library(name: "FerrySwitch", targets: ["FerrySwitch"]),
        .library(name: "FerryObjects", targets: ["FerryObjects"]),
        .library(name: "FerryClient", targets: ["FerryClient"]),
        .library(name: "FerryExamples", targets: ["FerryExamples"]),
        .library(name: "FerryMigration", targets: ["FerryMigration"]),
        .library(name: "FerryNode", targets: ["FerryNode"]),
        .library(name: "FerryCDN", targets: ["FerryCDN"]),
        .library(name: "FerryContainer", targets: ["FerryContainer"]),
        .library(name: "FerryConfiguration", targets: ["FerryConfiguration"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/groue/GRDB.swift.git", from: "7.10.0"),
        .package(url: "https://github.com/jpsim/Yams.git", from: "6.2.2"),
        .package(url: "https://github.com/swiftwasm/WasmKit.git", from: "0.4.2"),
        .package(url: "https://github.com/apple/swift-crypto.git", from: "4.5.2"),
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.37.6"),
        .package(url: "https://github.com/apple/swift-certificates.git", from: "1.21.1"),
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.1"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
        .package(url: "https://github.com/vapor/postgres-nio.git", from: "1.33.2"),
    ],
    targets: [
        .target(name: "CFerryLinux"),
        // Wasmtime's C API, declared for use through dlopen: the library is optional at run time.
        .target(name: "CFerryWasmtime", linkerSettings: [.linkedLibrary("dl")]),
        // The Linux runtime below NIO: kernel threads, the wakeable epoll loop, binding and
        // accepting, peer addresses, errno errors, the monotonic clock.
        // Locks from NIOConcurrencyHelpers (pthread mutexes), not Synchronization.Mutex: on Linux
        // the latter is a futex ThreadSanitizer cannot see, so it reports every access as a race.
        .target(
            name: "FerryPosix",
            dependencies: [
                "CFerryLinux",
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOCore", package: "swift-nio"),
            ]
        ),
        .target(
            name: "FerryWire",
            dependencies: [
                "FerryPosix",
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "NIOTLS", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // HTTP/1.1 message parsing and body framing, for the file server and the switch.
        .target(
            name: "FerryHTTP",
            dependencies: [
                "CFerryLinux",
                "FerryPosix",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
            ],
            swiftSettings: [exclusivityUnchecked]
        ),
        // The durable key-value service and its store.
        .target(
            name: "FerryKV",
            dependencies: [
                "CFerryLinux",
                "FerryPosix",
                "FerryWire",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Metrics", package: "swift-metrics"),
            ]
        ),
        // Reading a part's YAML configuration file, and reloading it on SIGHUP.
        .target(
            name: "FerryConfiguration",
            dependencies: [
                "FerryEndpoints",
                "FerryPosix",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                .product(name: "Yams", package: "Yams"),
            ]
        ),
        // The inetd: services started when a client arrives.
        .target(
            name: "FerrySuperserver",
            dependencies: [
                "CFerryLinux",
                "FerryEndpoints",
                "FerryPosix",
                "FerryWire",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                "FerryConfiguration",
            ]
        ),
        .target(
            name: "FerryServer",
            dependencies: [
                "FerryPosix",
                "CFerryLinux",
                "FerryWire",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                "FerryHTTP",
            ]
        ),
        .target(
            name: "FerryEndpoints",
            dependencies: [
                "FerryPosix",
                "FerryWire",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        .target(
            name: "FerrySwitch",
            dependencies: [
                "FerryPosix",
                "CFerryLinux",
                "FerryEndpoints",
                "FerryWire",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                "FerryHTTP",
                "FerryConfiguration",
            ],
            swiftSettings: [exclusivityUnchecked]
        ),
        .target(
            name: "FerryGuest",
            dependencies: [
                .product(name: "NIOCore", package: "swift-nio"),
                "CFerryLinux",
                "CFerryWasmtime",
                "FerryWire",
                .product(name: "WasmKit", package: "WasmKit"),
                .product(name: "WasmKitWASI", package: "WasmKit"),
                .product(name: "WAT", package: "WasmKit"),
                .product(name: "WasmParser", package: "WasmKit"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
            ]
        ),
        // Native programs in namespaces, on overlayfs layers, under cgroup limits; OCI bundles.
        .target(
            name: "FerryContainer",
            dependencies: [
                "CFerryLinux",
                "FerryPosix",
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ]
        ),
        // State on PostgreSQL: the kv service's and the object store's second backend.
        .target(
            name: "FerryPostgres",
            dependencies: [
                "FerryKV",
                "FerryObjects",
                "FerryWire",
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .target(
            name: "FerryObjects",
            dependencies: [
                "FerryPosix",
                "FerryEndpoints",
                "FerryGuest",
                "FerryWire",
                .product(name: "WasmKit", package: "WasmKit"),
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Metrics", package: "swift-metrics"),
            ]
        ),
        .target(
            name: "FerryClient",
            dependencies: [
                "FerryEndpoints",
                "FerryWire",
                "FerryHTTP",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // The counter of the README and of `ferry up`, native and wasm, with its generated stubs.
        .target(
            name: "FerryExamples",
            dependencies: [
                "FerryClient",
                "FerryGuest",
                "FerryObjects",
                .product(name: "Logging", package: "swift-log"),
                "FerryWire",
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
            ]
        ),
        // Wide-area clusters: the caching edge, the redirector (authoritative DNS with client
        // subnets, HTTP 302) and the policy of proximity, load and health.
        .target(
            name: "FerryCDN",
            dependencies: [
                "FerryPosix",
                "FerryConfiguration",
                "FerryEndpoints",
                "FerryHTTP",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        .target(
            name: "FerryMigration",
            dependencies: [
                "FerryContainer",
                "FerryPosix",
                "CFerryLinux",
                "FerryEndpoints",
                "FerryGuest",
                "FerryServer",
                "FerryWire",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOTLS", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                "FerryKV",
            ]
        ),
        .target(
            name: "FerryNode",
            dependencies: [
                "CFerryLinux",
                "FerryPosix",
                "FerryContainer",
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                "FerryMigration",
                "FerryEndpoints",
                "FerryGuest",
                "FerryObjects",
                "FerryServer",
                "FerryWire",
                "FerrySwitch",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                "FerryKV",
                "FerryExamples",
                "FerryCDN",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "Metrics", package: "swift-metrics"),
            ]
        ),
        .target(
            name: "FerryCommands",
            dependencies: [
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                "FerryClient",
                "FerryEndpoints",
                "FerryGuest",
                "FerryMigration",
                .product(name: "WasmKit", package: "WasmKit"),
                "FerryNode",
                "FerryObjects",
                "FerryHTTP",
                "FerryServer",
                "FerrySwitch",
                "FerryWire",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                "FerryKV",
                "FerrySuperserver",
                "FerryExamples",
                "FerryCDN",
                "FerryContainer",
                "FerryPosix",
                "FerryPostgres",
            ]
        ),
        // What `ferry` answers before anything else starts: the top-level help, an endpoint lookup.
        .target(
            name: "FerryQuickAnswers",
            dependencies: [
                "FerryEndpoints",
                "FerryPosix",
                "FerryWire",
                .product(name: "NIOCore", package: "swift-nio"),
            ]
        ),
        // `ferry`: the quick answers, in a program linked statically, with no shared library to
        // find and nothing to relocate; every other command goes on in `ferry-runtime` (execv).
        // Depending on it makes `swift run ferry` build it too (and link its modules here, pages
        // the loader never touches). Position-dependent: glibc's static-PIE start asserts on the
        // RUNPATH that SwiftPM gives every executable.
        .executableTarget(
            name: "ferry",
            dependencies: ["FerryQuickAnswers", "ferry-runtime"],
            linkerSettings: [
                .unsafeFlags(["-static-executable", "-use-ld=lld"] + staticFoundation)
            ]
        ),
        // Every command, parsed and run: the Swift runtime and Foundation linked in, so no shared
        // libraries to find and relocate at each start, which each node and container start pays.
        .executableTarget(
            name: "ferry-runtime",
            dependencies: ["FerryCommands"],
            linkerSettings: [
                // RELR packs the binary's 162,000 relative relocations into 32 KiB the loader
                // walks as a bitmap (`ferry --help` x20: 375 -> 335 ms); it stays position
                // independent, as Debian builds its servers (-no-pie was 300 ms, without ASLR).
                // No dynamic symbol table of every public Swift symbol (60,795 of them; nothing
                // looks ours up, and backtraces read the static one): x20 220-248 -> 183-236 ms.
                .unsafeFlags(
                    ["-static-stdlib", "-use-ld=lld"] + staticFoundation + [
                        "-Xlinker", "-z", "-Xlinker", "pack-relative-relocs", "-Xlinker", "--no-export-dynamic",
                    ]
                )
            ]
        ),
        // The load generator the benchmarks drive Ferry and its anchors with.
        .executableTarget(
            name: "ferry-bench",
            dependencies: [
                "FerryClient",
                "FerryObjects",
                "FerryEndpoints",
                "FerryGuest",
                "FerryMigration",
                "FerryServer",
                "FerryWire",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "WasmKit", package: "WasmKit"),
                "FerryKV",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                "FerryExamples",
            ],
            path: "Benchmarks/Sources/ferry-bench"
        ),
        // What the tests share: a client with timeouts, an HTTP reader, temporary directories,
        // waiting for a condition.
        .target(
            name: "FerryTestSupport",
            dependencies: [
                "CFerryLinux",
                "FerryPosix",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            path: "Tests/FerryTestSupport"
        ),
        .testTarget(
            name: "FerryWireTests",
            dependencies: [
                .product(name: "Logging", package: "swift-log"),
                "FerryTestSupport",
                "FerryWire",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOTestUtils", package: "swift-nio"),
            ]
        ),
        .testTarget(
            name: "FerryServerTests",
            dependencies: [
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                "FerryServer",
                "FerryWire",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "MetricsTestKit", package: "swift-metrics"),
                "FerryTestSupport",
            ]
        ),
        .testTarget(
            name: "FerryCDNTests",
            dependencies: [
                "FerryCDN",
                "FerryConfiguration",
                "FerryEndpoints",
                "FerryHTTP",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                "FerryTestSupport",
            ]
        ),
        .testTarget(
            name: "FerryContainerTests",
            dependencies: [
                "FerryContainer",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                "FerryTestSupport",
            ]
        ),
        .testTarget(
            name: "FerryHTTPTests",
            dependencies: [
                "FerryHTTP",
                "FerryPosix",
                .product(name: "NIOCore", package: "swift-nio"),
            ]
        ),
        .testTarget(
            name: "FerryKVTests",
            dependencies: [
                "FerryKV",
                "FerryPostgres",
                "FerryWire",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOTLS", package: "swift-nio"),
                "FerryTestSupport",
            ]
        ),
        .testTarget(
            name: "FerrySuperserverTests",
            dependencies: [
                "FerryEndpoints",
                "FerrySuperserver",
                .product(name: "Logging", package: "swift-log"),
                "FerryConfiguration",
                "FerryTestSupport",
            ]
        ),
        .testTarget(
            name: "FerryEndpointsTests",
            dependencies: [
                "FerryEndpoints",
                "FerryTestSupport",
                "FerryWire",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        .testTarget(
            name: "FerrySwitchTests",
            dependencies: [
                "FerrySwitch",
                "FerryHTTP",
                "FerryEndpoints",
                "FerryServer",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                "FerryConfiguration",
                "FerryTestSupport",
            ]
        ),
        .testTarget(
            name: "FerryGuestTests",
            dependencies: [
                "FerryPosix",
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                "FerryGuest",
                .product(name: "WasmKit", package: "WasmKit"),
                "FerryTestSupport",
            ]
        ),
        .testTarget(
            name: "FerryObjectsTests",
            dependencies: [
                "FerryPostgres",
                .product(name: "NIOPosix", package: "swift-nio"),
                "FerryClient",
                "FerryEndpoints",
                "FerryTestSupport",
                "FerryGuest",
                "FerryObjects",
                "FerryWire",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                "FerryExamples",
            ]
        ),
        .testTarget(
            name: "FerryMigrationTests",
            dependencies: [
                .product(name: "WasmKit", package: "WasmKit"),
                "FerryGuest",
                "FerryMigration",
                "FerryTestSupport",
            ]
        ),
        .testTarget(
            name: "FerryNodeTests",
            dependencies: [
                "FerryEndpoints",
                "FerryNode",
                "FerryServer",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                "FerryTestSupport",
            ]
        ),
        .testTarget(
            name: "FerryClientTests",
            dependencies: [
                "FerryClient",
                "FerryHTTP",
                "FerryServer",
                "FerryTestSupport",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ]
        ),
        .testTarget(
            name: "FerryCommandsTests",
            dependencies: [
                "FerryPosix",
                "FerryClient",
                "FerryCommands",
                "FerryQuickAnswers",
                "FerryGuest",
                "FerryMigration",
                "FerryObjects",
                "FerryWire",
                .product(name: "Logging", package: "swift-log"),
                "FerryEndpoints",
                "FerryServer",
                "FerrySwitch",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                "FerryKV",
                "FerryExamples",
                "FerryTestSupport",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
            ]
        ),
    ]
)

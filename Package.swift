// swift-tools-version: 6.1
import PackageDescription

let package = Package(
    name: "IoMTChain",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "iomtchain", targets: ["iomtchain"]),
        .library(name: "IoMTCore", targets: ["IoMTCore"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-crypto", from: "3.12.3"),
        .package(url: "https://github.com/groue/GRDB.swift", from: "7.10.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        // Hummingbird's own lifecycle (already built with it): the console's event streams end
        // when the server shuts down gracefully.
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/x-sheep/swift-property-based", from: "2.0.1"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
    ],
    targets: [
        // Pure core: types, canonical encoding, hashing, signatures, Merkle trees,
        // the authenticated state tree. No I/O, no clock, no randomness.
        .target(
            name: "IoMTCore",
            dependencies: [.product(name: "Crypto", package: "swift-crypto")]
        ),
        // The edge, pure: one reading model, FHIR R4 / vendor CSV normalisers with unit and range
        // checks, exact decimals, content ids (CIDv1). No I/O.
        .target(name: "IoMTEdge", dependencies: ["IoMTCore", "CZlib", .product(name: "Crypto", package: "swift-crypto")]),
        // zlib (Debian's zlib1g-dev): blobs are compressed before they are encrypted.
        .systemLibrary(name: "CZlib", path: "Sources/CZlib"),
        // Deterministic contract modules applied to every block.
        .target(name: "IoMTContracts", dependencies: ["IoMTCore", "IoMTConsensus"]),
        // Durable ledger: SQLite through GRDB in WAL mode.
        .target(
            name: "IoMTStore",
            dependencies: ["IoMTCore", .product(name: "GRDB", package: "GRDB.swift")]
        ),
        // The node: mempool, block production, chain verification.
        .target(name: "IoMTNode", dependencies: ["IoMTCore", "IoMTContracts", "IoMTStore", "IoMTConsensus"]),
        // Tendermint consensus as a pure state machine (docs/consensus.md). No I/O, clock or randomness.
        .target(name: "IoMTConsensus", dependencies: ["IoMTCore"]),
        // Deterministic cluster simulation of the consensus core: seeded faults, checked invariants.
        .target(name: "IoMTSimulation", dependencies: ["IoMTConsensus", "IoMTCore"]),
        // Authenticated, encrypted peer-to-peer transport on SwiftNIO (docs/network.md).
        .target(
            name: "IoMTNetwork",
            dependencies: [
                "IoMTCore",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
            ]
        ),
        // Eclipse Paho MQTT C client (Debian's libpaho-mqtt-dev) behind a small C shim.
        .target(name: "CPahoMQTT", linkerSettings: [.linkedLibrary("paho-mqtt3c")]),
        // The edge gateway: device uploads over HTTP, durable queue (SQLite), sealed blobs, anchoring.
        .target(
            name: "IoMTGateway",
            dependencies: ["IoMTEdge", "IoMTCore", "IoMTStore", "IoMTAPI", "CPahoMQTT", .product(name: "GRDB", package: "GRDB.swift"),
                           .product(name: "Hummingbird", package: "hummingbird"), .product(name: "Crypto", package: "swift-crypto")]
        ),
        // HTTP API (Hummingbird).
        .target(
            name: "IoMTAPI",
            dependencies: ["IoMTNode", .product(name: "Hummingbird", package: "hummingbird"),
                           .product(name: "ServiceLifecycle", package: "swift-service-lifecycle")],
            resources: [.embedInCode("openapi.yaml")]
        ),
        .executableTarget(
            name: "iomtchain",
            dependencies: [
                "IoMTCore", "IoMTNode", "IoMTAPI", "IoMTSimulation", "IoMTNetwork", "IoMTConsensus", "IoMTEdge", "IoMTGateway",
                .product(name: "ArgumentParser", package: "swift-argument-parser"), .product(name: "Crypto", package: "swift-crypto"),
            ]
        ),
        .testTarget(
            name: "IoMTCoreTests",
            dependencies: ["IoMTCore", .product(name: "PropertyBased", package: "swift-property-based"), .product(name: "Crypto", package: "swift-crypto")]
        ),
        .testTarget(
            name: "IoMTConsensusTests",
            dependencies: ["IoMTConsensus", "IoMTSimulation", "IoMTCore"]
        ),
        .testTarget(
            name: "IoMTNetworkTests",
            dependencies: [
                "IoMTNetwork", "IoMTCore",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
            ]
        ),
        .testTarget(
            name: "IoMTContractsTests",
            dependencies: ["IoMTContracts", "IoMTConsensus", .product(name: "Crypto", package: "swift-crypto")]
        ),
        .testTarget(
            name: "IoMTStoreTests",
            dependencies: ["IoMTCore", "IoMTContracts", "IoMTNode", "IoMTStore", "IoMTConsensus", .product(name: "GRDB", package: "GRDB.swift")]
        ),
        .testTarget(
            name: "IoMTEdgeTests",
            dependencies: ["IoMTEdge", "IoMTCore", .product(name: "Crypto", package: "swift-crypto")],
            exclude: ["Fixtures"]
        ),
        .testTarget(
            name: "IoMTLightClientTests",
            dependencies: ["IoMTCore"]
        ),
        .testTarget(
            name: "IoMTIntegrationTests",
            dependencies: [
                "IoMTCore", "IoMTNode", "IoMTStore", "IoMTAPI", "IoMTEdge", "IoMTGateway",
                .product(name: "HummingbirdTesting", package: "hummingbird"), .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "GRDB", package: "GRDB.swift"),
            ]
        ),
    ]
)

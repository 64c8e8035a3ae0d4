// swift-tools-version:6.1
// Micro-benchmarks for Sluice's hot paths (ordo-one/benchmark). A nested package so that the
// main package never depends on the benchmark harness. See bench/README.md for how to run it.
import PackageDescription

let package = Package(
    name: "SluiceMicro",
    platforms: [.macOS(.v14)],
    dependencies: [
        .package(name: "Sluice", path: "../.."),
        .package(url: "https://github.com/ordo-one/benchmark", exact: "1.38.1", traits: ["MallocInterposer"]),
    ],
    targets: [
        .executableTarget(
            name: "SluiceMicro",
            dependencies: [
                .product(name: "Benchmark", package: "benchmark"),
                .product(name: "SluiceCore", package: "Sluice"),
                .product(name: "SluiceControl", package: "Sluice"),
            ],
            path: "Benchmarks/SluiceMicro",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        ),
    ]
)

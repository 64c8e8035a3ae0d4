// swift-tools-version:6.1
// libFuzzer targets for Sluice's parsers and config loader. A nested package so that normal
// builds of the root package never build it. Build and run with ./run-fuzzers.sh; one target by hand:
//
//   swift build --product FuzzRequestParser --sanitize fuzzer \
//     -Xswiftc -sanitize=fuzzer,address -Xswiftc -parse-as-library -Xswiftc -DFUZZING
//
// Without those flags (no -DFUZZING) each target is a plain executable that replays the files
// given as arguments through the same checks, for debugging a crash input without libFuzzer.
import PackageDescription

let fuzzTargets = ["FuzzRequestParser", "FuzzResponseParser", "FuzzChunkedDecoder", "FuzzConfigLoader"]

let package = Package(
    name: "SluiceFuzz",
    platforms: [.macOS(.v14)],
    dependencies: [
        .package(name: "Sluice", path: "../.."),
    ],
    targets: [
        // Invariant checks and the replay driver shared by every target.
        .target(name: "FuzzSupport", swiftSettings: [.swiftLanguageMode(.v6)]),
    ] + fuzzTargets.map { name in
        .executableTarget(
            name: name,
            dependencies: [
                "FuzzSupport",
                .product(name: "SluiceCore", package: "Sluice"),
                .product(name: "SluiceControl", package: "Sluice"),
            ],
            swiftSettings: [.swiftLanguageMode(.v6)]
        )
    }
)

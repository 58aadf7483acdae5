// swift-tools-version: 6.0
// dmaemu's libFuzzer binary: `make fuzz` builds it with -sanitize=fuzzer,address and runs
// each target of Sources/Fuzzing (chosen with FUZZ_TARGET) on its corpus. A package of
// its own because its entry point is libFuzzer's main, not ours.
import PackageDescription

let package = Package(
    name: "dmaemu-fuzz",
    dependencies: [.package(name: "dmaemu", path: "..")],
    targets: [
        .executableTarget(name: "dmaemu-fuzz", dependencies: [.product(name: "Fuzzing", package: "dmaemu")])
    ],
    swiftLanguageModes: [.v6]
)

// swift-tools-version: 6.1
// dmaemu's micro-benchmarks (ordo-one/benchmark): the engines' hot paths, one operation at
// a time, with the interposer counting mallocs. A package of its own so that the main
// build does not fetch or compile the benchmark harness. Run: swift package benchmark
import PackageDescription

let package = Package(
    name: "dmaemu-benchmarks",
    dependencies: [
        .package(name: "dmaemu", path: ".."),
        // Only the malloc interposer: the runtime interposer (a default trait) is a
        // package outside the mirror we build from.
        .package(url: "https://github.com/ordo-one/benchmark", exact: "1.38.1", traits: ["MallocInterposer"]),
    ],
    targets: [
        .executableTarget(
            name: "DMAEngines",
            dependencies: [
                .product(name: "Benchmark", package: "benchmark"),
                .product(name: "DMAPool", package: "dmaemu"),
                .product(name: "DMA", package: "dmaemu"),
                .product(name: "SWIOTLB", package: "dmaemu"),
                .product(name: "Mempool", package: "dmaemu"),
                .product(name: "PhysicalMemory", package: "dmaemu"),
                .product(name: "Trace", package: "dmaemu"),
            ],
            path: "Benchmarks/DMAEngines",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        )
    ]
)

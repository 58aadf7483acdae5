// swift-tools-version: 6.0
// dmaemu: the kernel's DMA memory machinery as Swift engines. Modules depend downward only
// (see ../shared/DESIGN.md): PhysicalMemory <- SWIOTLB <- DMA <- DMAPool <- dmaemu-bench,
// PhysicalMemory <- Mempool. Locking (a pthread mutex ThreadSanitizer can see) is under all.
import PackageDescription

let package = Package(
    name: "dmaemu",
    products: [
        .library(name: "PhysicalMemory", targets: ["PhysicalMemory"]),
        .library(name: "SWIOTLB", targets: ["SWIOTLB"]),
        .library(name: "DMA", targets: ["DMA"]),
        .library(name: "DMAPool", targets: ["DMAPool"]),
        .library(name: "Mempool", targets: ["Mempool"]),
        .library(name: "ControlFS", targets: ["ControlFS"]),
        .library(name: "FUSE", targets: ["FUSE"]),
        .library(name: "Fuzzing", targets: ["Fuzzing"]),
        .executable(name: "dmaemu-bench", targets: ["dmaemu-bench"]),
        .executable(name: "dmaemud", targets: ["dmaemud"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-system", from: "1.4.0"),
        .package(url: "https://github.com/LebJe/TOMLKit", from: "0.6.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.0.0"),
        .package(url: "https://github.com/apple/swift-crypto", from: "4.0.0"),
    ],
    targets: [
        .target(name: "Locking"),
        .target(name: "PhysicalMemory", dependencies: ["Locking"]),
        .target(name: "SWIOTLB", dependencies: ["PhysicalMemory", "Locking"]),
        .target(name: "DMA", dependencies: ["SWIOTLB", "PhysicalMemory", "Locking"]),
        .target(name: "DMAPool", dependencies: ["DMA", "PhysicalMemory"]),
        .target(name: "Mempool", dependencies: ["PhysicalMemory", "Locking"]),
        .executableTarget(
            name: "dmaemu-bench",
            dependencies: [
                "Daemon", "ControlFS", "DMAPool", "DMA", "SWIOTLB", "PhysicalMemory", "Locking",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .target(name: "ControlFS", dependencies: ["Locking", .product(name: "SystemPackage", package: "swift-system")]),
        .systemLibrary(name: "CFuse3", pkgConfig: "fuse3", providers: [.apt(["libfuse3-dev"])]),
        .target(
            name: "FUSE",
            dependencies: ["CFuse3", "ControlFS", "Locking", .product(name: "SystemPackage", package: "swift-system")]),
        .target(
            name: "Daemon",
            dependencies: [
                "FUSE", "ControlFS", "DMAPool", "Mempool", "DMA", "SWIOTLB", "PhysicalMemory", "Locking",
                .product(name: "SystemPackage", package: "swift-system"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "CryptoExtras", package: "swift-crypto"),
                .product(name: "TOMLKit", package: "TOMLKit"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ]),
        .executableTarget(
            name: "dmaemud",
            dependencies: [
                "Daemon", "FUSE", "PhysicalMemory",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ]),
        // The fuzz targets: Fuzz/ links them with libFuzzer, FuzzTests replays their corpus.
        .target(name: "Fuzzing", dependencies: ["Daemon", "ControlFS", "SWIOTLB", "PhysicalMemory"]),
        .testTarget(name: "FuzzTests", dependencies: ["Fuzzing"]),
        .testTarget(
            name: "DaemonTests",
            dependencies: ["Daemon", "ControlFS", "DMA", "PhysicalMemory", "Locking", .product(name: "SystemPackage", package: "swift-system")]),
        .testTarget(
            name: "FUSETests",
            dependencies: ["FUSE", "ControlFS", "Locking", .product(name: "SystemPackage", package: "swift-system")]),
        .testTarget(name: "PhysicalMemoryTests", dependencies: ["PhysicalMemory"]),
        // Runs the built dmaemu-bench, as a user would; no module of its own to import.
        .testTarget(name: "BenchTests"),
        .testTarget(name: "MempoolTests", dependencies: ["Mempool", "PhysicalMemory", "Locking"]),
        .testTarget(
            name: "ControlFSTests",
            dependencies: ["ControlFS", .product(name: "SystemPackage", package: "swift-system")]),
        .testTarget(name: "SWIOTLBTests", dependencies: ["SWIOTLB", "PhysicalMemory"]),
        .testTarget(name: "DMATests", dependencies: ["DMA", "SWIOTLB", "PhysicalMemory", "Locking"]),
        .testTarget(name: "DMAPoolTests", dependencies: ["DMAPool", "DMA", "PhysicalMemory", "CHeapStats", "Locking"]),
        // glibc's heap statistics, for the tests that prove a hot path allocates nothing.
        .target(name: "CHeapStats", path: "Tests/CHeapStats"),
    ],
    swiftLanguageModes: [.v6]
)

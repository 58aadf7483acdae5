// swift-tools-version: 6.2
// dmaemu: the kernel's DMA memory machinery as Swift engines, driven by emulated drivers
// and shown through a FUSE-mounted, sysfs-like tree. One module per kernel subsystem;
// modules depend downward only. ARCHITECTURE.md draws the graph this file declares (and
// `make check-architecture`, part of `make test`, holds the two to each other).
import PackageDescription

let systemPackage = Target.Dependency.product(name: "SystemPackage", package: "swift-system")

let package = Package(
    name: "dmaemu",
    products: [
        .executable(name: "dmaemud", targets: ["dmaemud"]),
        .executable(name: "dmaemu-bench", targets: ["dmaemu-bench"]),
        .executable(name: "dmaemu-replay", targets: ["dmaemu-replay"]),
        // The engines, for the micro-benchmarks of Benchmarks/ and the fuzzers of Fuzz/.
        .library(name: "PhysicalMemory", targets: ["PhysicalMemory"]),
        .library(name: "SWIOTLB", targets: ["SWIOTLB"]),
        .library(name: "DMA", targets: ["DMA"]),
        .library(name: "DMAPool", targets: ["DMAPool"]),
        .library(name: "Mempool", targets: ["Mempool"]),
        .library(name: "Trace", targets: ["Trace"]),
        .library(name: "Fuzzing", targets: ["Fuzzing"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-system", from: "1.4.0"),
        .package(url: "https://github.com/LebJe/TOMLKit", from: "0.6.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.0.0"),
        .package(url: "https://github.com/apple/swift-crypto", from: "4.0.0"),
    ],
    targets: [
        // Base: locks, the kernel's lib/ helpers, the printk ring.
        .target(name: "Locking"),
        .target(name: "Lib", dependencies: [systemPackage]),
        .target(name: "Printk", dependencies: ["Locking", "Lib"]),
        .target(name: "Trace", dependencies: ["Locking", "Lib"]),

        // The engines (mm/, kernel/dma/).
        .target(name: "PhysicalMemory", dependencies: ["Locking", "Printk", "Lib"]),
        .target(name: "SWIOTLB", dependencies: ["PhysicalMemory", "Printk", "Locking", "Lib"]),
        .target(name: "DMA", dependencies: ["SWIOTLB", "PhysicalMemory", "Trace", "Printk", "Locking", "Lib"]),
        .target(name: "DMAPool", dependencies: ["DMA", "PhysicalMemory", "Trace", "Locking"]),
        .target(name: "Mempool", dependencies: ["PhysicalMemory", "Locking"]),

        // What the engines serve: the block layer, the emulated hardware, the drivers.
        .target(name: "Block", dependencies: ["DMA", "PhysicalMemory", "Locking", "Lib", systemPackage]),
        .target(name: "Hardware", dependencies: ["DMA", "Locking", "Lib", systemPackage]),
        .target(
            name: "Drivers",
            dependencies: ["Block", "Hardware", "DMAPool", "DMA", "SWIOTLB", "PhysicalMemory", "Trace", "Locking", "Lib", systemPackage]),
        .target(
            name: "DMCrypt",
            dependencies: [
                "Drivers", "Block", "Mempool", "DMA", "PhysicalMemory", "Locking", "Lib", "CLibcrypto", "CXTS", systemPackage,
                .product(name: "Crypto", package: "swift-crypto"),
            ]),

        // A real host's trace replayed on the engines, on any parameters.
        .target(name: "Replay", dependencies: ["DMAPool", "DMA", "SWIOTLB", "PhysicalMemory", "Trace", "Lib", systemPackage]),

        // The control tree and how it is served.
        .target(name: "ControlFS", dependencies: ["Locking", systemPackage]),
        .target(
            name: "ControlSurface",
            dependencies: [
                "ControlFS", "Drivers", "Block", "DMAPool", "DMA", "SWIOTLB", "PhysicalMemory", "Trace", "Locking", "Lib", systemPackage,
                .product(name: "Prometheus", package: "swift-prometheus"),
            ]),
        .systemLibrary(name: "CFuse3", pkgConfig: "fuse3", providers: [.apt(["libfuse3-dev"])]),
        .systemLibrary(name: "CLibcrypto", pkgConfig: "libcrypto", providers: [.apt(["libssl-dev"])]),
        .target(name: "CXTS"),
        .target(name: "FUSE", dependencies: ["CFuse3", "ControlFS", "Locking", systemPackage]),

        // The machine from its config, and the programs.
        .target(
            name: "Daemon",
            dependencies: [
                "ControlSurface", "DMCrypt", "Drivers", "ControlFS", "DMAPool", "SWIOTLB", "PhysicalMemory", "Trace", "Printk", "Lib",
                systemPackage, .product(name: "TOMLKit", package: "TOMLKit"), .product(name: "Logging", package: "swift-log"),
            ]),
        .executableTarget(
            name: "dmaemud",
            dependencies: [
                "Daemon", "ControlSurface", "FUSE", "Printk",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ]),
        .executableTarget(
            name: "dmaemu-bench",
            dependencies: [
                "Daemon", "DMCrypt", "ControlFS", "DMAPool", "DMA", "SWIOTLB", "PhysicalMemory", "Locking", "Lib", "Trace", "Replay",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]),
        .executableTarget(
            name: "dmaemu-replay",
            dependencies: [
                "Replay", "Daemon", "DMAPool", "SWIOTLB", "Lib",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]),
        // The fuzz targets: Fuzz/ links them with libFuzzer, FuzzingTests replays their corpus.
        .target(name: "Fuzzing", dependencies: ["Daemon", "ControlSurface", "Block", "ControlFS", "SWIOTLB", "PhysicalMemory", "Replay"]),

        .testTarget(name: "LockingTests", dependencies: ["Locking"]),
        .testTarget(name: "LibTests", dependencies: ["Lib", systemPackage]),
        .testTarget(name: "PrintkTests", dependencies: ["Printk", "Locking"]),
        .testTarget(name: "TraceTests", dependencies: ["Trace", "Lib"]),
        .testTarget(name: "PhysicalMemoryTests", dependencies: ["PhysicalMemory", "Lib"]),
        .testTarget(name: "SWIOTLBTests", dependencies: ["SWIOTLB", "PhysicalMemory", "Locking", "Lib"]),
        .testTarget(name: "DMATests", dependencies: ["DMA", "SWIOTLB", "PhysicalMemory", "Trace", "Lib"]),
        // What Debian's real kernels did (tools/oracle/oracle.sh), held against the engines.
        .testTarget(
            name: "OracleTests",
            dependencies: [
                "Replay", "TestSupport", "DMCrypt", "Drivers", "Block", "DMAPool", "DMA", "SWIOTLB", "PhysicalMemory", "Lib",
                .product(name: "Crypto", package: "swift-crypto"),
            ], exclude: ["Fixtures"]),
        .testTarget(name: "ReplayTests", dependencies: ["Replay", "DMA", "DMAPool", "SWIOTLB", "PhysicalMemory", "Trace", "Lib"]),
        .testTarget(name: "DMAPoolTests", dependencies: ["DMAPool", "DMA", "PhysicalMemory", "CHeapStats", "Locking", "Trace"]),
        .testTarget(name: "MempoolTests", dependencies: ["Mempool", "PhysicalMemory", "Locking"]),
        .testTarget(name: "BlockTests", dependencies: ["Block", "DMA", "SWIOTLB", "PhysicalMemory", "Lib", systemPackage]),
        .testTarget(name: "HardwareTests", dependencies: ["Hardware", "DMA", "PhysicalMemory", systemPackage]),
        .testTarget(
            name: "DriversTests",
            dependencies: ["TestSupport", "Drivers", "Hardware", "DMAPool", "Block", "DMA", "PhysicalMemory", "Lib", "Locking", "Trace", systemPackage]),
        .testTarget(
            name: "DMCryptTests",
            dependencies: ["TestSupport", "DMCrypt", "CLibcrypto", "Drivers", "Block", "Mempool", "PhysicalMemory", "Lib", "Locking", systemPackage]),
        .testTarget(name: "CXTSTests", dependencies: ["CXTS"]),
        .testTarget(name: "ControlFSTests", dependencies: ["ControlFS", "Locking", systemPackage]),
        .testTarget(
            name: "ControlSurfaceTests",
            dependencies: [
                "TestSupport", "ControlSurface", "ControlFS", "Drivers", "Block", "DMA", "SWIOTLB", "PhysicalMemory", "Lib", "Trace",
                systemPackage,
            ]),
        .testTarget(name: "FUSETests", dependencies: ["FUSE", "ControlFS", "Locking", systemPackage]),
        .testTarget(
            name: "DaemonTests",
            dependencies: ["TestSupport", "Daemon", "ControlFS", "DMA", "DMAPool", "SWIOTLB", "PhysicalMemory", "Locking", "Lib", systemPackage]),
        .testTarget(name: "FuzzingTests", dependencies: ["Fuzzing"]),
        // Runs the built dmaemu-bench, as a user would; no module of its own to import.
        .testTarget(name: "BenchTests"),
        // glibc's heap statistics, for the tests that prove a hot path allocates nothing.
        .target(name: "CHeapStats", path: "Tests/CHeapStats"),
        // What tests share: shell commands, and a small machine's devices for the drivers'
        // tests, which run without the control surface.
        .target(
            name: "TestSupport", dependencies: ["ControlFS", "Drivers", "Block", "Lib", "PhysicalMemory", "SWIOTLB", "Trace", systemPackage],
            path: "Tests/TestSupport"),
    ],
    swiftLanguageModes: [.v6]
)

// kernel/debug/dma_map_benchmark: the kernel's benchmark device. A write of parameters
// ("threads=2 seconds=5 bits=32 dir=1 delay=0 granule=1", or the tool's letters t s b d x
// g) runs it and returns when it is done; a read shows the tool's three lines for the
// last run. It maps through a device of its own, bound to the default swiotlb, as the
// kernel's benchmark is bound to one device through driver_override.
import ControlFS
import DMA
import Lib
import Locking
import SystemPackage

public final class MapBenchmarkFile: Sendable {
    let benchmark: MapBenchmark
    private let last = PthreadMutex<String?>(nil)
    private let running = PthreadMutex(false)

    init(device: Device) { benchmark = MapBenchmark(device: device) }

    var attribute: ControlAttribute {
        ControlAttribute(
            mode: 0o600, show: { [self] in last.withLock { $0 } ?? "no run yet\n" },
            store: { [self] text throws(Errno) in try run(text) })
    }

    /// The parameters a write gives; EINVAL for anything the kernel's checks refuse.
    public static func parameters(_ text: String) throws(Errno) -> MapBenchmark.Parameters {
        var parameters = MapBenchmark.Parameters()
        for word in StoreParsing.words(text) {
            let parts = word.split(separator: "=", maxSplits: 1).map(String.init)
            guard parts.count == 2 else { throw .invalidArgument }
            let value = Int(try StoreParsing.number(parts[1], max: 10_000_000))
            switch parts[0] {
            case "threads", "t": parameters.threads = value
            case "seconds", "s": parameters.seconds = value
            case "bits", "b": parameters.bits = value
            case "dir", "d":
                guard let direction = DMADirection(rawValue: value) else { throw .invalidArgument }
                parameters.direction = direction
            case "delay", "x": parameters.delayNs = value
            case "granule", "g": parameters.granule = value
            default: throw .invalidArgument
            }
        }
        guard parameters.isValid else { throw .invalidArgument }
        return parameters
    }

    private func run(_ text: String) throws(Errno) {
        let parameters = try Self.parameters(text)
        try running.withLock { (running) throws(Errno) in
            guard !running else { throw .resourceBusy }
            running = true
        }
        defer { running.withLock { $0 = false } }
        guard let result = benchmark.run(parameters) else { throw .noMemory }
        last.withLock { $0 = result.report(parameters) }
        if result.failed { throw .noMemory }
    }
}

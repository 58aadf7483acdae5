// kernel/debug/dma_map_benchmark: the kernel's benchmark device. The kernel's tool
// (tools/testing/selftests/dma/dma_map_benchmark) runs it with the DMA_MAP_BENCHMARK
// ioctl, answered for both struct map_benchmark layouts; a write of parameters
// ("threads=2 seconds=5 bits=32 dir=1 delay=0 granule=1", or the tool's letters t s n b d
// x g) runs it too. Either returns when the run is done; a read shows the tool's three
// lines for the last run. It maps through a device of its own, bound to the default
// swiotlb, as the kernel's benchmark is bound to one device through driver_override.
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
            store: { [self] text throws(Errno) in _ = try run(Self.parameters(text)) },
            ioctl: { [self] command, argument throws(Errno) in try ioctl(command, argument) })
    }

    /// _IOWR('d', 1, struct map_benchmark) for the struct of v5.11-v6.12's header with
    /// `expansion[76]` (136 bytes), and for the 64-byte one of the headers that dropped it;
    /// a kernel answers only its own, dmaemu both.
    public static let command136: UInt32 = 0xC088_6401
    public static let command64: UInt32 = 0xC040_6401

    /// The parameters a write gives; EINVAL for a word or number that is not one. The
    /// kernel's checks come when it runs.
    public static func parameters(_ text: String) throws(Errno) -> MapBenchmark.Parameters {
        var parameters = MapBenchmark.Parameters()
        for word in StoreParsing.words(text) {
            let parts = word.split(separator: "=", maxSplits: 1).map(String.init)
            guard parts.count == 2 else { throw .invalidArgument }
            if parts[0] == "node" || parts[0] == "n" {
                guard let node = Int32(parts[1]) else { throw .invalidArgument }
                parameters.node = node
                continue
            }
            let value = UInt32(try StoreParsing.number(parts[1], max: UInt64(UInt32.max)))
            switch parts[0] {
            case "threads", "t": parameters.threads = value
            case "seconds", "s": parameters.seconds = value
            case "bits", "b": parameters.bits = value
            case "dir", "d": parameters.dir = value
            case "delay", "x": parameters.delayNs = value
            case "granule", "g": parameters.granule = value
            case "mode", "m":
                guard value <= UInt8.max else { throw .invalidArgument }
                parameters.mode = UInt8(value)
            default: throw .invalidArgument
            }
        }
        return parameters
    }

    /// The struct's inputs, little-endian at the kernel's offsets; map_mode (offset 60)
    /// only in the 136-byte layout.
    static func parameters(_ argument: UnsafeRawBufferPointer) -> MapBenchmark.Parameters {
        func word(_ offset: Int) -> UInt32 { UInt32(littleEndian: argument.loadUnaligned(fromByteOffset: offset, as: UInt32.self)) }
        var parameters = MapBenchmark.Parameters()
        parameters.threads = word(32)
        parameters.seconds = word(36)
        parameters.node = Int32(bitPattern: word(40))
        parameters.bits = word(44)
        parameters.dir = word(48)
        parameters.delayNs = word(52)
        parameters.granule = word(56)
        parameters.mode = argument.count == 136 ? argument[60] : 0
        return parameters
    }

    private func ioctl(_ command: UInt32, _ argument: UnsafeMutableRawBufferPointer) throws(Errno) -> Int32 {
        guard command == Self.command136 && argument.count == 136 || command == Self.command64 && argument.count == 64 else {
            throw .invalidArgument  // the kernel's `default: return -EINVAL`
        }
        let parameters = Self.parameters(UnsafeRawBufferPointer(argument))
        let result = try run(parameters)
        // The struct goes back as it came, with the figures in (left as they came when
        // no loop ran, as the kernel leaves them).
        if let figures = result.kernelFigures {
            for (offset, value) in [(0, figures.avgMap), (8, figures.mapStddev), (16, figures.avgUnmap), (24, figures.unmapStddev)] {
                argument.storeBytes(of: value.littleEndian, toByteOffset: offset, as: UInt64.self)
            }
        }
        return 0
    }

    private func run(_ parameters: MapBenchmark.Parameters) throws(Errno) -> MapBenchmark.Result {
        try running.withLock { (running) throws(Errno) in
            guard !running else { throw .resourceBusy }
            running = true
        }
        defer { running.withLock { $0 = false } }
        do throws(MapBenchmark.Failure) {
            let result = try benchmark.run(parameters)
            last.withLock { $0 = result.report(parameters) }
            return result
        } catch {
            throw error == .invalid ? .invalidArgument : .noMemory
        }
    }
}

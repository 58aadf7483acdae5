// The libFuzzer targets (Fuzz/ builds them with -sanitize=fuzzer) and the replay of their
// corpus by FuzzingTests: every parser of text a user writes, fed arbitrary bytes. A target
// returns normally for any input; a trap, a sanitizer report or a broken invariant is
// the finding.
import Block
import ControlFS
import ControlSurface
import Daemon
import SWIOTLB

public enum FuzzTarget: String, CaseIterable, Sendable {
    /// Sequences of writes to every control-file store of a small machine.
    case store
    /// A disk's `io` request line.
    case io
    /// kernel/debug/dma_map_benchmark's parameters.
    case mapBenchmark = "map_benchmark"
    /// The `swiotlb=` kernel parameter.
    case swiotlb
    /// A dmaemu.toml configuration file.
    case config
    /// A recording or saved trace, for dmaemu-replay.
    case trace

    public func run(_ input: UnsafeRawBufferPointer) {
        switch self {
        case .store: StoreFuzzer.run(input)
        case .io: _ = try? IOJob(parsing: text(input))
        case .mapBenchmark: _ = try? MapBenchmarkFile.parameters(text(input))
        case .swiotlb: _ = try? SWIOTLBConfig(kernelParameter: text(input))
        case .config: _ = try? MachineConfig(toml: text(input), file: "fuzz.toml")
        case .trace: TraceFuzzer.run(input)
        }
    }

    /// The bytes as the control tree hands them to a store: UTF-8 with invalid sequences
    /// repaired (ControlAttribute refuses those before any parser sees them).
    private func text(_ input: UnsafeRawBufferPointer) -> String { String(decoding: input, as: UTF8.self) }
}

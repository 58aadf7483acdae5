// dmaemu-bench: reproduces the seeds' benchmark tables with dmaemu's engines and prints
// the seed's figures (and, when given, the C limit measured in the same run) beside ours.
import ArgumentParser

@main
struct DMAEmuBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dmaemu-bench",
        abstract: "Reproduce the kernel mailing-list benchmarks on dmaemu's engines.",
        subcommands: [MPT3SASBench.self, DMAPoolTestBench.self, MapBench.self, ProbeBench.self, SWIOTLBIOBench.self, DMCryptBench.self]
    )
}

/// --algorithm: one generation of mm/dmapool.c, or all three in turn.
enum AlgorithmChoice: String, ExpressibleByArgument, CaseIterable {
    case stack, rbtree, legacy, all
}

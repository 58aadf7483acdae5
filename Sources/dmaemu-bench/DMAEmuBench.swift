// dmaemu-bench: reproduces the seeds' benchmark tables with dmaemu's engines and prints
// the seed's figures (and, when given, the C limit measured in the same run) beside ours.
import ArgumentParser
import Glibc

@main
struct DMAEmuBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dmaemu-bench",
        abstract: "Reproduce the kernel mailing-list benchmarks on dmaemu's engines.",
        subcommands: [
            AllBench.self, MPT3SASBench.self, ScalingBench.self, DMAPoolTestBench.self, MapBench.self, ProbeBench.self,
            SWIOTLBIOBench.self, DMCryptBench.self, XTSBench.self, PagesBench.self, NVMeQueueBench.self, FUSEBench.self, FioBench.self, TraceBench.self, DocsCommand.self,
        ]
    )

    /// Children inherit the signal mask, and a parent that runs us from a dispatch thread
    /// (swift test does) hands down one that blocks SIGTERM: the FUSE servers `fuse`
    /// starts would never see its terminate(). Clear it before any thread exists.
    static func main() {
        var none = sigset_t()
        sigemptyset(&none)
        pthread_sigmask(SIG_SETMASK, &none, nil)
        main(nil)
    }
}

/// --algorithm: one generation of mm/dmapool.c, or all three in turn.
enum AlgorithmChoice: String, ExpressibleByArgument, CaseIterable {
    case stack, rbtree, legacy, all
}

// report.md: one table per benchmark (our figure, the seed's, the C limit measured in
// the same run, ratios), the cost-growth checks, and links to the plots. The README's
// Performance section is the same text with its images under docs/.
import Foundation

struct Check {
    var name: String
    var figure: String
    var met: Bool
}

enum Report {
    static func markdown(_ results: BenchResults, images: String = "") -> String {
        var text = "Measured \(results.date) on \(results.host.cpus) CPUs, Linux \(results.host.kernel), "
            + "\(fixed(results.host.memoryGib, 0)) GiB\(results.quick ? " (--quick: tiny sizes, figures not meaningful)" : ""). "
            + "The C limits are tools/limits' programs, compiled and run in the same run.\n"
        if let mpt3sas = results.mpt3sas { text += "\n" + chainLoop(mpt3sas) }
        if let scaling = results.scaling { text += "\n" + Self.scaling(scaling, images) }
        if let test = results.dmapoolTest { text += "\n" + dmapoolTest(test) }
        if !results.map.isEmpty { text += "\n" + map(results.map) }
        if !results.probe.isEmpty { text += "\n" + probe(results.probe) }
        if let io = results.swiotlbIo { text += "\n" + swiotlbIO(io, results.memcpy, images) }
        if !results.dmcrypt.isEmpty { text += "\n" + dmcrypt(results.dmcrypt, results.memcpy, images) }
        if let xts = results.xts { text += "\n" + Self.xts(xts) }
        if let queues = results.nvmeQueues { text += "\n" + Self.nvmeQueues(queues) }
        if let pages = results.pages { text += "\n" + Self.pages(pages) }
        if let fuse = results.fuse { text += "\n" + Self.fuse(fuse) }
        if let fio = results.fio { text += "\n" + Self.fio(fio) }
        if let trace = results.trace { text += "\n" + Self.trace(trace) }
        if !results.errors.isEmpty {
            text += "\n### Failed\n\n" + results.errors.map { "- \($0)\n" }.joined()
        }
        return text
    }

    static func table(_ header: [String], _ rows: [[String]]) -> String {
        "| " + header.joined(separator: " | ") + " |\n|" + String(repeating: " --- |", count: header.count) + "\n"
            + rows.map { "| " + $0.joined(separator: " | ") + " |\n" }.joined()
    }

    static func ratio(_ ours: Double, _ theirs: Double) -> String { theirs > 0 ? fixed(ours / theirs, 2) + "x" : "-" }
    static func signed(_ value: Double) -> String { (value >= 0 ? "+" : "") + fixed(value) + "%" }

    static func chainLoop(_ result: MPT3SASResult) -> String {
        let rows = result.algorithms.map { loop -> [String] in
            let seed = Seeds.chainLoop[loop.algorithm]
            let limit = result.limit(for: loop.algorithm)
            return [
                "`\(loop.algorithm)`", fixed(loop.allocMs) + " ms", fixed(loop.freeMs) + " ms", "\(loop.pages)", "\(loop.blocks)",
                seed?.text ?? "-", seed.map { ratio(loop.allocMs, $0.alloc) + " / " + ratio(loop.freeMs, $0.free) } ?? "-",
                limit.map { "\($0.impl) \(fixed($0.allocMs)) / \(fixed($0.freeMs)) ms" } ?? "-",
                limit.map { ratio(loop.allocMs, $0.allocMs) + " / " + ratio(loop.freeMs, $0.freeMs) } ?? "-",
            ]
        }
        return "### mpt3sas chain loop, \(result.count) x \(result.size) B (medians of \(result.runs) runs)\n\n"
            + table(["algorithm", "create+alloc", "free+destroy", "pages", "blocks", "seed alloc / free", "ours / seed",
                     "C limit alloc / free", "ours / limit"], rows)
    }

    static func scaling(_ result: ScalingResult, _ images: String) -> String {
        let algorithms = ["stack", "rbtree", "legacy"].filter { a in result.points.contains { $0.algorithm == a } }
        let counts = Set(result.points.map(\.blocks)).sorted()
        let rows = counts.map { count -> [String] in
            var row = [String(count)]
            for algorithm in algorithms {
                let point = result.points.first { $0.algorithm == algorithm && $0.blocks == count }
                row.append(point.map { fixed($0.allocNsPerOp) + " / " + fixed($0.freeNsPerOp) } ?? "-")
            }
            if !result.limits.isEmpty {
                row.append(result.limits.first { $0.count == count }.map {
                    fixed($0.allocMs * 1e6 / Double(count)) + " / " + fixed($0.freeMs * 1e6 / Double(count))
                } ?? "-")
            }
            return row
        }
        let header = ["blocks"] + algorithms.map { "`\($0)` alloc / free" } + (result.limits.isEmpty ? [] : ["pool_limit.c stack"])
        return "### Cost growth: ns per operation against blocks in the pool\n\n"
            + "![ns per alloc and per free against blocks, log-log](\(images)scaling.svg)\n\n"
            + table(header, rows) + "\n" + checks(result).map { "- \($0.met ? "met" : "**NOT met**"): \($0.name): \($0.figure)\n" }.joined()
    }

    /// The issue's growth targets: stack flat within 1.5x from 1e4 to 1e6 blocks, rbtree
    /// no worse than logarithmic, legacy's free total quadratic.
    static func checks(_ result: ScalingResult) -> [Check] {
        func points(_ algorithm: String) -> [ScalingResult.Point] {
            result.points.filter { $0.algorithm == algorithm }.sorted { $0.blocks < $1.blocks }
        }
        /// The points nearest 1e4 and 1e6 (the range measured, in a quick run).
        func span(_ algorithm: String) -> (ScalingResult.Point, ScalingResult.Point)? {
            let all = points(algorithm)
            guard let first = all.first, let last = all.last, last.blocks > first.blocks else { return nil }
            let low = all.first { $0.blocks >= 10_000 } ?? first, high = all.last { $0.blocks <= 1_000_000 } ?? last
            return high.blocks > low.blocks ? (low, high) : (first, last)
        }
        var checks: [Check] = []
        if let (low, high) = span("stack") {
            let worst = max(high.allocNsPerOp / low.allocNsPerOp, high.freeNsPerOp / low.freeNsPerOp)
            checks.append(Check(
                name: "`stack` flat: per-op time at \(high.blocks) blocks within 1.5x of \(low.blocks)",
                figure: "alloc \(ratio(high.allocNsPerOp, low.allocNsPerOp)), free \(ratio(high.freeNsPerOp, low.freeNsPerOp))",
                met: worst <= 1.5))
        }
        if let (low, high) = span("rbtree") {
            let logarithmic = log(Double(high.blocks)) / log(Double(low.blocks))
            let worst = max(high.allocNsPerOp / low.allocNsPerOp, high.freeNsPerOp / low.freeNsPerOp)
            checks.append(Check(
                name: "`rbtree` at most logarithmic: per-op growth from \(low.blocks) to \(high.blocks) blocks within "
                    + "1.5 x log ratio = \(fixed(1.5 * logarithmic, 2))x",
                figure: "alloc \(ratio(high.allocNsPerOp, low.allocNsPerOp)), free \(ratio(high.freeNsPerOp, low.freeNsPerOp))",
                met: worst <= 1.5 * logarithmic))
        }
        let legacy = points("legacy")
        if let high = legacy.last, let low = legacy.last(where: { $0.blocks * 10 <= high.blocks }) ?? legacy.first, high.blocks > low.blocks {
            // Total free time = per-op time x blocks; its log-log slope is 2 when quadratic.
            let slope = log(high.freeNsPerOp * Double(high.blocks) / (low.freeNsPerOp * Double(low.blocks)))
                / log(Double(high.blocks) / Double(low.blocks))
            checks.append(Check(
                name: "`legacy` quadratic: log-log slope of the free loop's total from \(low.blocks) to \(high.blocks) blocks >= 1.7",
                figure: "slope \(fixed(slope, 2)) (per op \(ratio(high.freeNsPerOp, low.freeNsPerOp)))", met: slope >= 1.7))
        }
        return checks
    }

    static func dmapoolTest(_ result: DMAPoolTestResult) -> String {
        let algorithms = ["stack", "rbtree", "legacy"].filter { a in result.entries.contains { $0.algorithm == a } }
        let sizes = DMAPoolTestBench.table
        let rows = sizes.map { entry -> [String] in
            let seed = Seeds.dmapoolTest[entry.size]
            let label = entry.boundary == 0 ? String(entry.size) : "\(entry.size)/\(entry.align)/\(entry.boundary)"
            var row = [label, seed.map { String($0.before) } ?? "-", seed.map { String($0.after) } ?? "-"]
            var times: [String: Int] = [:]
            for algorithm in algorithms {
                let time = result.entries.first { $0.algorithm == algorithm && $0.size == entry.size }?.timeUs
                times[algorithm] = time
                row.append(time.map(String.init) ?? "-")
            }
            row.append(times["stack"].flatMap { stack in seed.map { ratio(Double(stack), Double($0.after)) } } ?? "-")
            row.append(times["legacy"].flatMap { legacy in seed.map { ratio(Double(legacy), Double($0.before)) } } ?? "-")
            return row
        }
        return "### dmapool_test: us for \(result.iterations) x (alloc all + free all)\n\n"
            + table(["size", "seed <= v6.3", "seed v6.4"] + algorithms.map { "`\($0)`" } + ["`stack` / seed v6.4", "`legacy` / seed <= v6.3"], rows)
    }

    static func map(_ results: [MapResult]) -> String {
        let rows = results.map { run -> [String] in
            let size = run.granule * 4096
            let pair = run.loopPairNs
            return [
                "\(run.threads) thread\(run.threads == 1 ? "" : "s"), \(size / 1024) KiB, \(run.dir)\(run.debugfs ? "" : ", no debugfs")\(run.bounced ? ", bounced" : "")",
                fixed(run.avgMapNs / 1000, 2) + " / " + fixed(run.avgUnmapNs / 1000, 2),
                fixed(Double(run.loops) / Double(run.seconds) / 1e3, 0) + "k",
                pair.map { fixed($0) + " ns" } ?? "-",
                run.memcpy.map { fixed($0.nsPerCopy) + " ns, \(fixed($0.gbPerS, 2)) GB/s" } ?? "-",
                pair.flatMap { pair in run.memcpy.map { ratio(pair, $0.nsPerCopy) } } ?? "-",
            ]
        }
        return "### dma_map_benchmark: map + unmap\n\n"
            + table(["run", "map / unmap us (per call)", "pairs/s", "pair in a loop", "memcpy limit", "pair / memcpy"], rows)
    }

    static func probe(_ results: [ProbeResult]) -> String {
        "### mpt3sas probe and remove (whole driver; medians of \(results.first?.runs ?? 0) runs)\n\n"
            + table(["algorithm", "probe", "remove", "seed chain loop alone"], results.map {
                ["`\($0.algorithm)`", fixed($0.probeMs) + " ms", fixed($0.removeMs) + " ms", Seeds.chainLoop[$0.algorithm]?.text ?? "-"]
            })
    }

    static func swiotlbIO(_ io: SWIOTLBIOResult, _ memcpy: [MemcpyRun], _ images: String) -> String {
        let rows = io.rows.map { row -> [String] in
            let seed = Seeds.swiotlbIO[row.workload]
            let bytes = row.workload == "big" ? 65536 : 4096
            let limit = memcpy.first { $0.bytes == bytes }
            return [
                row.workload, "\(fixed(row.baseMibS, 0)) (var \(fixed(row.baseVarPct))%)",
                "\(fixed(row.defaultMibS, 0)) (\(signed(row.defaultDiffPct)))", "\(fixed(row.growingMibS, 0)) (\(signed(row.growingDiffPct)))",
                seed.map { "\($0.default) / \($0.growing)" } ?? "-",
                limit.map { "\(fixed($0.gbPerS * 1e9 / 1_048_576, 0)) MiB/s" } ?? "-",
                limit.map { ratio(row.growingMibS, $0.gbPerS * 1e9 / 1_048_576) } ?? "-",
            ]
        }
        let worst = io.rows.map(\.growingDiffPct).min() ?? 0
        let peakPools = io.timeline.map(\.pools).max() ?? 0, peakUsed = io.timeline.map(\.used).max() ?? 0
        return "### swiotlb I/O: always bouncing, \(io.mib) MiB written + read per run (means of \(io.runs) runs)\n\n"
            + table(["workload", "base MiB/s", "default (diff)", "growing from 1 MiB (diff)", "seed diff default / growing",
                     "memcpy limit", "growing / memcpy"], rows)
            + "\n- \(worst >= Seeds.swiotlbWorstGrowing ? "met" : "**NOT met**"): worst growing diff \(signed(worst)) "
            + "against the seed's worst \(signed(Seeds.swiotlbWorstGrowing)); the growing machine ended at \(io.grownNslabs) slots.\n"
            + "- timeline (a growing machine of its own, the three workloads then 16 x 256 KiB at once): peak \(peakUsed) slots used, \(peakPools) pool\(peakPools == 1 ? "" : "s").\n\n"
            + "![swiotlb slots used and pools over time](\(images)swiotlb-growth.svg)\n"
    }

    static func dmcrypt(_ results: [DMCryptResult], _ memcpy: [MemcpyRun], _ images: String) -> String {
        let ciphers = ["aes-xts-plain64", "cipher_null-ecb"].filter { c in results.contains { $0.cipher == c } }
        let rows = DMCryptBench.modes.map { mode -> [String] in
            var row = ["`\(mode)`"]
            for cipher in ciphers {
                let result = results.first { $0.cipher == cipher && $0.pageAlloc == mode }
                let single = results.first { $0.cipher == cipher && $0.pageAlloc == "single" }
                var cell = result.map { fixed($0.mibPerS, 0) } ?? "-"
                if let result, let single, mode != "single" { cell += " (\(signed((result.mibPerS - single.mibPerS) / single.mibPerS * 100)))" }
                row += [cell, result.map { fixed($0.allocUsPerBio, 1) } ?? "-"]
            }
            let seed = Seeds.dmcrypt[mode]
            row += [seed.map { fixed($0.mibPerS, 0) } ?? "-", seed.map { "~" + fixed($0.allocUs, 0) } ?? "-"]
            return row
        }
        let depth = results.first.map { "depth \($0.iodepth), \($0.mib) MiB per run, means of \($0.runs) runs" } ?? ""
        var text = "### dm-crypt: 1 MiB writes over an NVMe RAM disk (\(depth))\n\n"
            + table(["page_alloc"] + ciphers.flatMap { ["\($0) MiB/s", "alloc us/bio"] } + ["seed MiB/s", "seed alloc us/bio"], rows)
        if let limit = memcpy.first(where: { $0.bytes == 65536 }),
            let best = results.filter({ $0.cipher == "cipher_null-ecb" }).max(by: { $0.mibPerS < $1.mibPerS })
        {
            let limitMiB = limit.gbPerS * 1e9 / 1_048_576
            text += "\nmemcpy_limit.c, 64 KiB copies on one core: \(fixed(limitMiB, 0)) MiB/s; the best null-cipher figure "
                + "(`\(best.pageAlloc)`) is \(ratio(best.mibPerS, limitMiB)) of it.\n"
        }
        return text + "\n![dm-crypt MiB/s and allocation time per mode](\(images)dmcrypt.svg)\n"
    }

    static func fio(_ fio: FioResult) -> String {
        func limit(_ job: String) -> Double? { fio.limits.first { $0.job == job }?.mibS }
        let crypt = fio.crypt.map { cell -> [String] in
            let seed = Seeds.dmcrypt[cell.target]
            return ["`\(cell.target)`", "\(fixed(cell.mibS, 0)) MiB/s (var \(fixed(cell.varPct))%)", seed.map { fixed($0.mibPerS, 0) + " MiB/s" } ?? "-",
                    limit("crypt").map { fixed($0, 0) + " MiB/s" } ?? "-", limit("crypt").map { ratio(cell.mibS, $0) } ?? "-"]
        }
        let workloads = ["small", "big", "4way"].filter { job in fio.swiotlb.contains { $0.job == job } }
        let swiotlb = workloads.map { job -> [String] in
            func cell(_ kernel: String) -> FioResult.Cell? { fio.swiotlb.first { $0.job == job && $0.target == kernel } }
            let base = cell("base")?.mibS ?? 0
            func diff(_ kernel: String) -> String {
                guard let c = cell(kernel) else { return "-" }
                return "\(fixed(c.mibS, 0)) (var \(fixed(c.varPct))%, \(base > 0 ? signed((c.mibS / base - 1) * 100) : "-"))"
            }
            let seed = Seeds.swiotlbIO[job]
            return [job, cell("base").map { "\(fixed($0.mibS, 0)) (var \(fixed($0.varPct))%)" } ?? "-", diff("default"), diff("growing"),
                    seed.map { "\($0.default) / \($0.growing)" } ?? "-", limit(job).map { fixed($0, 0) + " MiB/s" } ?? "-"]
        }
        return "### fio, the seeds' jobs, through FUSE (fio's own bandwidth; \(fio.seconds) s a job)\n\n"
            + "Yang Shi's job (1 MiB sequential direct writes, iodepth 256) on dm-crypt aes-xts-plain64 over an NVMe RAM disk, "
            + "means of \(fio.runs) runs:\n\n"
            + table(["page_alloc", "fio", "seed", "limit: the same job on tmpfs", "fio / limit"], crypt)
            + "\nPetr Tesarik's small/big/4way (reads and writes, synchronous) on an always-bouncing HBA, "
            + "means of \(fio.runs) runs (MiB/s, var, diff from base):\n\n"
            + table(["workload", "base", "default", "growing from 1 MiB", "seed diff default / growing", "limit: tmpfs"], swiotlb)
    }

    static func fuse(_ fuse: FUSEResult) -> String {
        "### The control tree through FUSE (medians of \(fuse.rounds) interleaved rounds of \(fuse.operations))\n\n"
            + table(["operation", "dmaemud", "limit", "ours / limit"], [
                ["`cat .../pools` (open+read+close)", fixed(fuse.catPoolsUs) + " us", "fuse_hello.c " + fixed(fuse.catHelloUs) + " us",
                 ratio(fuse.catPoolsUs, fuse.catHelloUs)],
                ["`echo 1 > .../alloc` (open+write+close)", fixed(fuse.echoAllocUs) + " us", "fuse_hello.c " + fixed(fuse.echoHelloUs) + " us",
                 ratio(fuse.echoAllocUs, fuse.echoHelloUs)],
                ["`echo \(fuse.blocks) > .../alloc`", fixed(fuse.bigEchoMs) + " ms", "the engine alone " + fixed(fuse.engineAllocMs) + " ms",
                 "\(fuse.bigEchoMs - fuse.engineAllocMs >= 0 ? "+" : "")\(fixed(fuse.bigEchoMs - fuse.engineAllocMs)) ms"],
            ])
    }

    /// Issue 22's goals: the threaded completion within 1.5x of the inline one per request
    /// at iodepth 1, and iodepth 32 on one thread at least iodepth 1 on every core.
    static func nvmeQueues(_ result: NVMeQueueResult) -> String {
        func us(_ ns: Double?) -> String { ns.map { fixed($0 / 1000, 2) + " us" } ?? "-" }
        let inline = result.modes.first { $0.completion == "inline" }, thread = result.modes.first { $0.completion == "thread" }
        var text = "### NVMe completion: inline and in a controller thread per queue (4 KiB direct reads, RAM disk)\n\n"
            + table(["completion", "us a request, depth 1", "MiB/s depth 1", "MiB/s depth 32 (1 thread)",
                     "MiB/s depth 1 x \(result.cores) threads"], result.modes.map { mode in
                [mode.completion, fixed(mode.depth1UsPerRequest, 2), fixed(mode.depth1MibPerS, 0), fixed(mode.depth32MibPerS, 0),
                 fixed(mode.depth1AllCoresMibPerS, 0)]
            })
        guard let inline, let thread else { return text }
        let overhead = thread.depth1UsPerRequest / inline.depth1UsPerRequest
        let depth = thread.depth32MibPerS / (thread.depth1MibPerS * Double(result.cores))
        text += "\n" + table(["what", "ours", "seed", "C limit", "goal"], [
            ["thread / inline, per request at depth 1", fixed(overhead, 2) + "x", "-",
             "a round trip to another thread: " + us(result.limitPollNs) + " polling, " + us(result.limitSleepNs) + " sleeping",
             "at most 1.5x" + (overhead <= 1.5 ? " (met)" : " (not met)")],
            ["depth 32 / (depth 1 x \(result.cores) cores), thread", fixed(depth, 2) + "x", "-", "-",
             "at least 1x" + (depth >= 1 ? " (met)" : " (not met)")],
        ])
        return text
    }

    /// The issue's goal: within 1.5x of libcrypto's aes-256-xts at its best (16 KiB units).
    static func xts(_ result: XTSResult) -> String {
        func mib(_ value: Double?) -> String { value.map { fixed($0, 0) + " MiB/s" } ?? "-" }
        let large = result.limitLargeMibPerS
        return "### dm-crypt's cipher alone (aes-xts-plain64, 64-byte key, one core)\n\n"
            + table(["what", "MiB/s", "seed", "C limit", "limit / ours", "goal"], [
                ["ours: 1 MiB of 512-byte sectors", mib(result.mibPerS), "1402 (dm-crypt, bulk)",
                 mib(result.limitSectorMibPerS) + " libcrypto xts, a sector per IV",
                 result.limitSectorMibPerS.map { ratio($0, result.mibPerS) } ?? "-", "-"],
                ["the same against 16 KiB units", mib(result.mibPerS), "-", mib(large) + " libcrypto xts, 16 KiB per IV",
                 large.map { ratio($0, result.mibPerS) } ?? "-", "at most 1.5x" + (large.map { $0 / result.mibPerS <= 1.5 ? " (met)" : " (not met)" } ?? "")],
            ])
    }

    /// The issue's goals: an order-0 pair at most 40 ns, a bulk of 256 at most 10 ns a
    /// page; "before" is the buddy allocator alone, as docs/benchmarks.md had it.
    static func pages(_ result: PagesResult) -> String {
        func ns(_ value: Double?) -> String { value.map { fixed($0, 1) + " ns" } ?? "-" }
        func goal(_ ours: Double, _ bound: Double) -> String { "at most \(Int(bound)) ns" + (ours <= bound ? " (met)" : " (not met)") }
        return "### The page allocator through the per-CPU lists (8 GiB machine, one thread, medians of \(result.runs) runs)\n\n"
            + table(["what", "ours", "before pcp", "goal", "C limit (a locked list)", "ours / limit"], [
                ["alloc_pages + __free_pages, order 0", ns(result.pairOrder0Ns), "159 ns", goal(result.pairOrder0Ns, 40),
                 ns(result.limitPairNs), result.limitPairNs.map { ratio(result.pairOrder0Ns, $0) } ?? "-"],
                ["alloc_pages + __free_pages, order 4", ns(result.pairOrder4Ns), "101 ns", "-", "-", "-"],
                ["alloc_pages_bulk of 256, per page", ns(result.bulkAllocNsPerPage), "-", goal(result.bulkAllocNsPerPage, 10),
                 ns(result.limitBulkAllocNsPerPage), result.limitBulkAllocNsPerPage.map { ratio(result.bulkAllocNsPerPage, $0) } ?? "-"],
                ["their 256 __free_pages, per page", ns(result.bulkFreeNsPerPage), "-", "-",
                 ns(result.limitBulkFreeNsPerPage), result.limitBulkFreeNsPerPage.map { ratio(result.bulkFreeNsPerPage, $0) } ?? "-"],
            ])
    }

    static func trace(_ result: TraceResult) -> String {
        let perEvent = result.nsPerEvent
        let ring = result.limitRingWriteNs
        let parseLimit = result.limitParseEventsPerS
        func rate(_ value: Double) -> String { fixed(value / 1e6, 2) + " M/s" }
        return "### Tracing and replay\n\n"
            + table(["what", "ours", "target", "C limit", "ours / limit"], [
                ["bounced 4 KiB map + unmap, tracing off", fixed(result.pairOffNs) + " ns", "-", "-", "-"],
                ["the same, every dma and swiotlb event on", fixed(result.pairOnNs) + " ns", "-", "-", "-"],
                ["cost per event (\(result.eventsPerPair) a pair)", fixed(perEvent) + " ns", "no heap, no String",
                 ring.map { fixed($0) + " ns ring write" } ?? "-", ring.map { ratio(perEvent, $0) } ?? "-"],
                ["parse a recording (\(result.events) events)", rate(result.parseEventsPerS), "-",
                 parseLimit.map { rate($0) + " line split" } ?? "-", parseLimit.map { ratio(result.parseEventsPerS, $0) } ?? "-"],
                ["replay it", rate(result.replayEventsPerS), "1 M/s", "-", "-"],
                ["read and replay, end to end", rate(1 / (1 / result.parseEventsPerS + 1 / result.replayEventsPerS)), "-", "-", "-"],
            ])
    }
}

// `dmaemu-bench pages`: the page allocator's hot paths, through the per-CPU lists: an
// order-0 alloc_pages + __free_pages pair, the same at order 4 (past the pcp orders: the
// buddy lists under the zone lock), and a bulk of 256 order-0 pages (alloc_pages_bulk
// into an array) freed page by page, on an 8 GiB machine, beside tools/limits/page_limit.c in the same run (a spinlock around a
// list threaded through a mem_map array: the pcp list's own work and nothing else).
import ArgumentParser
import Foundation
import Lib
import PhysicalMemory

struct PagesBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pages", abstract: "alloc_pages/__free_pages and alloc_pages_bulk through the per-CPU lists.")

    @Option(help: "Seconds per measurement (1...30).") var seconds = 1
    @Option(help: "Runs of each measurement; the medians are reported (1...20).") var runs = 5
    @Option(help: "A compiled tools/limits/page_limit.c to run beside.") var limit: String?
    @Flag(help: "The result as one line of JSON.") var json = false

    func validate() throws {
        guard (1...30).contains(seconds) else { throw ValidationError("--seconds: 1...30") }
        guard (1...20).contains(runs) else { throw ValidationError("--runs: 1...20") }
    }

    func run() throws {
        let result = try measure()
        if json { return try BenchJSON.print(result) }
        print(Report.pages(result), terminator: "")
    }

    struct LimitRun: Decodable {
        var op: String
        var ns: Double?
        var allocNs: Double?
        var freeNs: Double?
    }

    func measure() throws -> PagesResult {
        Progress.shared.begin("pages")
        let ram = try PhysicalMemory(size: 8 << 30)
        let budget = UInt64(seconds) * 1_000_000_000
        func pairs(order: Int) -> Double {
            let start = monotonicNs()
            var count = 0
            while monotonicNs() - start < budget {
                for _ in 0..<1000 { ram.freePages(ram.allocPages(order: order)!, order: order) }
                count += 1000
            }
            return Double(monotonicNs() - start) / Double(count)
        }
        let array = UnsafeMutableBufferPointer<PhysAddr>.allocate(capacity: 256)
        defer { array.deallocate() }
        /// ns per page of a bulk of 256 and of their frees.
        func bulk() -> (alloc: Double, free: Double) {
            var allocNs: UInt64 = 0, freeNs: UInt64 = 0, bulks = 0
            let start = monotonicNs()
            while monotonicNs() - start < budget {
                array.update(repeating: 0)
                let t0 = monotonicNs()
                precondition(ram.allocPagesBulk(array) == 256)
                let t1 = monotonicNs()
                for page in array { ram.freePages(page, order: 0) }
                freeNs += monotonicNs() - t1
                allocNs += t1 - t0
                bulks += 1
            }
            return (Double(allocNs) / Double(bulks * 256), Double(freeNs) / Double(bulks * 256))
        }
        // The measurements take turns, run after run; this VM swings by half between runs.
        var order0: [Double] = [], order4: [Double] = [], bulkAlloc: [Double] = [], bulkFree: [Double] = []
        for run in 0..<runs {
            order0.append(pairs(order: 0))
            order4.append(pairs(order: 4))
            let (alloc, free) = bulk()
            bulkAlloc.append(alloc)
            bulkFree.append(free)
            Progress.shared.step(run + 1, of: runs)
        }
        func median(_ values: [Double]) -> Double { values.sorted()[values.count / 2] }
        var result = PagesResult(
            runs: runs, pairOrder0Ns: median(order0), pairOrder4Ns: median(order4), bulkAllocNsPerPage: median(bulkAlloc),
            bulkFreeNsPerPage: median(bulkFree))
        if let limit {
            let lines = try runLimit(limit, [String(seconds)], as: LimitRun.self)
            result.limitPairNs = lines.first { $0.op == "alloc_free" }?.ns
            let bulk = lines.first { $0.op == "bulk256" }
            result.limitBulkAllocNsPerPage = bulk?.allocNs
            result.limitBulkFreeNsPerPage = bulk?.freeNs
        }
        return result
    }
}

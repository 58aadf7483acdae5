// dmaemu-bench must not rot: every subcommand runs with tiny sizes, its JSON parses and
// holds what the kernel's layouts say it must, and `all --quick` writes a results.json,
// a report with every section and plots that are well-formed SVG. Speeds are not asserted
// (they are the benchmarks' business); counts and layouts are.
import Foundation
import FoundationXML
import Glibc
import Testing

/// The built tools, next to this test binary (make test builds them first).
let buildDirectory = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
let benchPath = buildDirectory.appendingPathComponent("dmaemu-bench").path
/// The repository's C limits and fuse_rw.py.
let limitsPath = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent().appendingPathComponent("tools/limits").path

func fuseAvailable() -> Bool {
    access("/dev/fuse", R_OK | W_OK) == 0 || ProcessInfo.processInfo.environment["CI"] == "true"
}

/// Runs dmaemu-bench; its stdout, or a recorded failure with its stderr.
func bench(_ arguments: [String]) throws -> String {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: benchPath)
    process.arguments = arguments
    let out = Pipe(), err = Pipe()
    process.standardOutput = out
    process.standardError = err
    try process.run()
    let output = out.fileHandleForReading.readDataToEndOfFile()
    let errors = err.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    #expect(process.terminationStatus == 0, "dmaemu-bench \(arguments): \(String(decoding: errors, as: UTF8.self))")
    return String(decoding: output, as: UTF8.self)
}

func json(_ text: String) throws -> Any {
    try JSONSerialization.jsonObject(with: Data(text.utf8))
}

@Suite(.serialized)
struct BenchToolTests {
    init() {
        #expect(FileManager.default.isExecutableFile(atPath: benchPath), "build dmaemu-bench first (make test does)")
    }

    @Test func mpt3sasCountsThePagesOfEachLayout() throws {
        let result = try #require(try json(bench(["mpt3sas", "--count", "2000", "--runs", "1", "--json"])) as? [String: Any])
        let loops = try #require(result["algorithms"] as? [[String: Any]])
        #expect(loops.map { $0["algorithm"] as? String } == ["stack", "rbtree", "legacy"])
        // 128 B blocks: 32 to a page since v6.4 (and in the rbtree series), 31 in the legacy
        // pool (the ">=" boundary quirk); the blocks column counts 32 per page either way.
        for loop in loops.prefix(2) {
            #expect(loop["pages"] as? Int == 63)  // ceil(2000 / 32)
            #expect(loop["blocks"] as? Int == 2016)
        }
        #expect(loops[2]["pages"] as? Int == 65)  // ceil(2000 / 31)
        #expect(loops[2]["blocks"] as? Int == 2080)
        #expect((result["limits"] as? [Any])?.isEmpty == true)  // no --limit given
    }

    @Test func scalingStepsHalfADecadeAndStopsLegacyAtItsBudget() throws {
        let result = try #require(
            try json(bench(["scaling", "--max-blocks", "10000", "--work", "10000", "--legacy-budget", "1000", "--json"])) as? [String: Any])
        let points = try #require(result["points"] as? [[String: Any]])
        let stack = points.filter { $0["algorithm"] as? String == "stack" }
        #expect(stack.map { $0["blocks"] as? Int } == [1000, 3162, 10000])
        #expect(stack.map { $0["repeats"] as? Int } == [10, 3, 3])  // --work 10000 blocks per point, 3 at least
        #expect(points.filter { $0["algorithm"] as? String == "legacy" }.count == 3)
        // A budget of a microsecond leaves legacy its first point only.
        let tight = try #require(
            try json(bench(["scaling", "--algorithm", "legacy", "--max-blocks", "10000", "--legacy-budget", "0.000001", "--json"]))
                as? [String: Any])
        #expect((tight["points"] as? [[String: Any]])?.map { $0["blocks"] as? Int } == [1000])
    }

    @Test func dmapoolTestRunsTheModuleTable() throws {
        let result = try #require(try json(bench(["dmapool-test", "--algorithm", "stack", "--iterations", "1", "--json"])) as? [String: Any])
        let entries = try #require(result["entries"] as? [[String: Any]])
        // (PAGE_SIZE / size) * 512 blocks, clamped to [1024, 8192].
        #expect(entries.map { $0["size"] as? Int } == [16, 64, 256, 1024, 4096, 68])
        #expect(entries.map { $0["blocks"] as? Int } == [8192, 8192, 8192, 2048, 1024, 8192])
        #expect(entries.last?["boundary"] as? Int == 4096)
    }

    @Test func mapBouncesAbove4GiBWithA32BitMask() throws {
        let result = try #require(try json(bench(["map", "-t", "2", "-s", "1", "-b", "32", "-d", "1", "--json"])) as? [String: Any])
        #expect(result["bounced"] as? Bool == true)
        #expect(result["dir"] as? String == "TO_DEVICE")
        #expect((result["loops"] as? Int ?? 0) > 0)
        #expect((result["tool_output"] as? String)?.hasPrefix("dma mapping benchmark: threads:2 seconds:1 node:-1 dir:TO_DEVICE granule: 1\n") == true)
        let direct = try #require(try json(bench(["map", "-s", "1", "-b", "64", "--json"])) as? [String: Any])
        #expect(direct["bounced"] as? Bool == false)
    }

    @Test func probeTimesAProbeAndARemove() throws {
        let results = try #require(try json(bench(["probe", "--algorithm", "stack", "--runs", "1", "--json"])) as? [[String: Any]])
        #expect(results.count == 1)
        #expect(results[0]["algorithm"] as? String == "stack")
        #expect((results[0]["probe_ms"] as? Double ?? 0) > 0)
    }

    @Test func swiotlbIOGrowsItsPoolsUnderTheBurst() throws {
        let result = try #require(try json(bench(["swiotlb-io", "--runs", "2", "--mib", "1", "--json"])) as? [String: Any])
        #expect((result["rows"] as? [[String: Any]])?.map { $0["workload"] as? String } == ["small", "big", "4way"])
        let timeline = try #require(result["timeline"] as? [[String: Any]])
        // Booted with 1 MiB: 512 slots in one pool, until the burst maps up to 16 x 128 slots.
        #expect(timeline.first?["nslabs"] as? Int == 512)
        #expect(timeline.first?["pools"] as? Int == 1)
        #expect(timeline.contains { ($0["pools"] as? Int ?? 0) >= 2 })
        let phases = timeline.compactMap { $0["workload"] as? String }.reduce(into: [String]()) { if $0.last != $1 { $0.append($1) } }
        #expect(phases == ["small", "big", "4way", "burst"])
    }

    @Test func dmcryptReportsEveryPageAllocMode() throws {
        let results = try #require(
            try json(bench(["dmcrypt", "--mib", "16", "--runs", "1", "--cipher", "cipher_null-ecb", "--json"])) as? [[String: Any]])
        #expect(results.map { $0["page_alloc"] as? String } == ["single", "bulk", "compound"])
        #expect(results.allSatisfy { $0["cipher"] as? String == "cipher_null-ecb" && ($0["mib_per_s"] as? Double ?? 0) > 0 })
    }

    @Test(.enabled(if: fuseAvailable(), "needs /dev/fuse (CI has it, as root)"))
    func fuseTimesDmaemudBesideFuseHello() throws {
        let work = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: work) }
        let hello = work + "/fuse_hello"
        let compile = Process()
        compile.executableURL = URL(fileURLWithPath: "/bin/sh")
        compile.arguments = ["-c", "cc -O2 -o \(hello) \(limitsPath)/fuse_hello.c $(pkg-config --cflags --libs fuse3)"]
        try compile.run()
        compile.waitUntilExit()
        #expect(compile.terminationStatus == 0)
        let result = try #require(try json(bench([
            "fuse", "--limit", hello, "--timer", limitsPath + "/fuse_rw.py", "--dmaemud", buildDirectory.appendingPathComponent("dmaemud").path,
            "--operations", "20", "--rounds", "1", "--blocks", "1000", "--json",
        ])) as? [String: Any])
        for key in ["cat_pools_us", "cat_hello_us", "echo_alloc_us", "echo_hello_us", "big_echo_ms"] {
            #expect((result[key] as? Double ?? 0) > 0, "\(key)")
        }
    }

    /// The bar is drawn on a terminal (script(1) gives the run one) and nowhere else.
    @Test func theProgressBarIsForTerminalsOnly() throws {
        let command = "\(benchPath) mpt3sas --count 2000 --runs 1"
        let onTerminal = Process()
        onTerminal.executableURL = URL(fileURLWithPath: "/usr/bin/script")
        onTerminal.arguments = ["-qec", command, "/dev/null"]
        let out = Pipe()
        onTerminal.standardOutput = out
        try onTerminal.run()
        let shown = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        onTerminal.waitUntilExit()
        #expect(shown.contains("] ") && shown.contains("mpt3sas (1/1,") && shown.contains("ETA"))

        let piped = Process()
        piped.executableURL = URL(fileURLWithPath: benchPath)
        piped.arguments = ["mpt3sas", "--count", "2000", "--runs", "1"]
        let err = Pipe()
        piped.standardError = err
        piped.standardOutput = FileHandle.nullDevice
        try piped.run()
        let stderr = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        piped.waitUntilExit()
        #expect(!stderr.contains("ETA"))
    }

    /// The growth verdicts on curves made by hand: per-op ns at 1e4 and 1e6 (1e5 and 1e6 for
    /// legacy's slope), one set inside every target and one just outside each.
    @Test(arguments: [
        (stack: (10.0, 8.0, 12.0, 9.2), rbtree: (15.0, 15.0, 20.0, 30.0), legacy: (50.0, 500.0), met: true),
        (stack: (10.0, 8.0, 16.0, 9.2), rbtree: (15.0, 15.0, 20.0, 35.0), legacy: (50.0, 100.0), met: false),
    ])
    func growthChecksJudgeTheCurves(
        stack: (Double, Double, Double, Double), rbtree: (Double, Double, Double, Double), legacy: (Double, Double), met: Bool
    ) throws {
        func point(_ algorithm: String, _ blocks: Int, _ alloc: Double, _ free: Double) -> [String: Any] {
            ["algorithm": algorithm, "blocks": blocks, "repeats": 3, "alloc_ns_per_op": alloc, "free_ns_per_op": free]
        }
        let points = [
            point("stack", 10_000, stack.0, stack.1), point("stack", 1_000_000, stack.2, stack.3),
            point("rbtree", 10_000, rbtree.0, rbtree.1), point("rbtree", 1_000_000, rbtree.2, rbtree.3),
            point("legacy", 100_000, 20, legacy.0), point("legacy", 1_000_000, 20, legacy.1),
        ]
        let results: [String: Any] = [
            "date": "2026-11-23", "host": ["cpus": 2, "kernel": "6.1", "memory_gib": 24.0], "quick": false,
            "memcpy": [], "map": [], "probe": [], "dmcrypt": [], "errors": [],
            "scaling": ["size": 128, "points": points, "limits": []],
        ]
        let work = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: work) }
        try JSONSerialization.data(withJSONObject: results).write(to: URL(fileURLWithPath: work + "/results.json"))
        try "<!-- bench-report:begin (make bench-docs writes this part) -->\n<!-- bench-report:end -->\n"
            .write(toFile: work + "/page.md", atomically: true, encoding: .utf8)
        _ = try bench(["docs", "--results", work + "/results.json", "--page", work + "/page.md", "--docs", work + "/docs"])
        let report = try String(contentsOfFile: work + "/page.md", encoding: .utf8)
        let verdict = met ? "- met: " : "- **NOT met**: "
        // stack: 12/10 = 1.20x and 9.2/8 = 1.15x inside 1.5x; 16/10 = 1.60x outside.
        #expect(report.contains(verdict + "`stack` flat"))
        #expect(report.contains(met ? "alloc 1.20x, free 1.15x" : "alloc 1.60x, free 1.15x"))
        // rbtree: log(1e6)/log(1e4) = 1.5, so 2.25x at most; free 30/15 = 2.00x, 35/15 = 2.33x.
        #expect(report.contains(verdict + "`rbtree` at most logarithmic"))
        #expect(report.contains(met ? "alloc 1.33x, free 2.00x" : "alloc 1.33x, free 2.33x"))
        // legacy's free total: x10 blocks and x10 per op is slope 2.00; x2 per op is log10(20) = 1.30.
        #expect(report.contains(verdict + "`legacy` quadratic"))
        #expect(report.contains(met ? "slope 2.00 (per op 10.00x)" : "slope 1.30 (per op 2.00x)"))
    }

    @Test func allWritesResultsReportAndPlots() throws {
        let out = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: out) }
        var arguments = ["all", "--quick", "--out", out, "--limits", limitsPath]
        let fio = fuseAvailable() && access("/usr/bin/fio", X_OK) == 0
        if !fuseAvailable() { arguments += ["--skip", "fuse,fio"] }
        let printed = try bench(arguments)
        let results = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: out + "/results.json"))) as? [String: Any])
        #expect(results["quick"] as? Bool == true)
        #expect((results["errors"] as? [Any])?.isEmpty == true, "\(results["errors"] ?? "")")
        for section in ["mpt3sas", "scaling", "dmapool_test", "swiotlb_io"] { #expect(results[section] is [String: Any], "\(section)") }
        #expect((results["map"] as? [Any])?.count == 4)
        #expect((results["dmcrypt"] as? [Any])?.count == 6)  // three modes, two ciphers
        #expect((results["memcpy"] as? [[String: Any]])?.map { $0["bytes"] as? Int } == [4096, 65536])
        // The limits ran beside: pool_limit.c's two shapes at the chain loop's count.
        let limits = (results["mpt3sas"] as? [String: Any])?["limits"] as? [[String: Any]]
        #expect(limits?.map { $0["impl"] as? String } == ["c-stack", "c-legacy"])
        #expect(limits?.first?["pages"] as? Int == 63)

        // fio's cells: three page_alloc modes, three workloads on three swiotlbs, four limits.
        if fio {
            let cells = results["fio"] as? [String: Any]
            #expect([("crypt", 3), ("swiotlb", 9), ("limits", 4)].allSatisfy { (cells?[$0.0] as? [[String: Any]])?.count == $0.1 }, "\(cells ?? [:])")
            #expect((cells?["crypt"] as? [[String: Any]])?.allSatisfy { ($0["mib_s"] as? Double ?? 0) > 0 } == true)
        }

        let report = try String(contentsOfFile: out + "/report.md", encoding: .utf8)
        #expect(printed.contains("### mpt3sas chain loop"))
        #expect(report.contains("### fio, the seeds' jobs") == fio)
        for heading in ["mpt3sas chain loop, 2000 x 128 B", "Cost growth", "dmapool_test", "dma_map_benchmark", "mpt3sas probe and remove",
                        "swiotlb I/O", "dm-crypt"] {
            #expect(report.contains("### " + heading), "\(heading)")
        }
        #expect(report.contains("| `legacy` | ") && report.contains("c-legacy"))
        #expect(report.contains("`stack` flat") && report.contains("`legacy` quadratic"))
        for plot in ["scaling.svg", "swiotlb-growth.svg", "dmcrypt.svg"] {
            #expect(report.contains("](\(plot))"))
            let parser = XMLParser(data: try Data(contentsOf: URL(fileURLWithPath: out + "/" + plot)))
            #expect(parser.parse(), "\(plot) is not well-formed: \(String(describing: parser.parserError))")
        }

        // docs: the page's block between its markers, and the plots beside it in docs/.
        try FileManager.default.createDirectory(atPath: out + "/docs", withIntermediateDirectories: true)
        let page = out + "/docs/benchmarks.md"
        try "# x\n\n## Performance\n\nprose stays\n\n<!-- bench-report:begin (make bench-docs writes this part) -->\nold\n<!-- bench-report:end -->\n\nafter\n"
            .write(toFile: page, atomically: true, encoding: .utf8)
        _ = try bench(["docs", "--results", out + "/results.json", "--page", page, "--docs", out + "/docs"])
        let updated = try String(contentsOfFile: page, encoding: .utf8)
        #expect(updated.hasPrefix("# x\n\n## Performance\n\nprose stays\n\n<!-- bench-report:begin"))
        #expect(!updated.contains("\nold\n") && updated.hasSuffix("<!-- bench-report:end -->\n\nafter\n"))
        #expect(updated.contains("](scaling.svg)"))  // relative to the page
        #expect(FileManager.default.fileExists(atPath: out + "/docs/dmcrypt.svg"))
    }
}

func temporaryDirectory() throws -> String {
    var template = Array("/tmp/dmaemu-bench-test.XXXXXX".utf8CString)
    guard let made = mkdtemp(&template) else { throw POSIXError(.EIO) }
    return String(cString: made)
}

// `dmaemu-bench all`: every subcommand in turn, with the C limits of tools/limits
// compiled and run in the same run, into results.json, report.md and the plots. A
// subcommand that fails is reported as failed; the others still run.
import ArgumentParser
import Foundation

struct AllBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "all", abstract: "Run every benchmark; write results.json, report.md and SVG plots.")

    @Option(help: "Where the results, the report, the plots and the compiled limits go.") var out = "bench-results"
    @Option(help: "The folder of the C limits and fuse_rw.py.") var limits = "tools/limits"
    @Option(help: "The dmaemud for the FUSE figures (default: the one beside this program).") var dmaemud: String?
    @Option(help: "Subcommands to leave out, comma-separated (e.g. fuse,swiotlb-io).") var skip = ""
    @Flag(help: "Tiny sizes: checks that everything runs and renders, in seconds; the figures mean nothing.") var quick = false

    /// Each subcommand's arguments (full, quick) and its expected share of a full run in
    /// seconds, for the progress bar's ETA.
    func plan(_ compiled: CLimits) -> [(name: String, weight: Double, arguments: [String])] {
        let pool = compiled.poolLimit.map { ["--limit", $0] } ?? []
        let memcpy = compiled.memcpyLimit.map { ["--limit", $0] } ?? []
        func pick(_ full: [String], _ tiny: [String]) -> [String] { quick ? tiny : full }
        let seconds = quick ? "1" : "5"
        var plan: [(name: String, weight: Double, arguments: [String])] = [
            ("mpt3sas", 25, pool + pick([], ["--count", "2000", "--runs", "1"])),
            ("scaling", 70, pool + pick([], ["--max-blocks", "10000", "--work", "10000", "--legacy-budget", "1"])),
            ("dmapool-test", 25, pick([], ["--iterations", "1"])),
            ("map", 6, memcpy + ["-t", "1", "-s", seconds, "-d", "1", "-g", "1"]),
            ("map", 6, memcpy + ["-t", "1", "-s", seconds, "-d", "1", "-g", "16"]),
            ("map", 6, ["-t", "2", "-s", seconds, "-d", "1"]),
            ("map", 6, ["-t", "2", "-s", seconds, "-d", "1", "--no-debugfs"]),
            ("probe", 25, pick([], ["--algorithm", "stack", "--runs", "1"])),
            ("swiotlb-io", 100, pick(["--runs", "10"], ["--runs", "2", "--mib", "1"])),
            ("dmcrypt", 45, pick([], ["--mib", "16", "--runs", "1"])),
            ("dmcrypt", 20, ["--cipher", "cipher_null-ecb"] + pick([], ["--mib", "16", "--runs", "1"])),
            ("xts", 15, (compiled.xtsLimit.map { ["--limit", $0] } ?? []) + pick([], ["--seconds", "1", "--runs", "1"])),
            ("nvme-queues", 30, (compiled.handoffLimit.map { ["--limit", $0] } ?? []) + pick([], ["--requests", "2000", "--runs", "1"])),
            ("pages", 16, (compiled.pageLimit.map { ["--limit", $0] } ?? []) + pick([], ["--runs", "1"])),
            ("trace", 10, (compiled.traceLimit.map { ["--limit", $0] } ?? []) + pick([], ["--seconds", "1", "--events", "10000"])),
        ]
        if let hello = compiled.fuseHello {
            plan.append(("fuse", 40, ["--limit", hello, "--timer", "\(limits)/fuse_rw.py"]
                + (dmaemud.map { ["--dmaemud", $0] } ?? []) + pick([], ["--operations", "50", "--rounds", "1", "--blocks", "1000"])))
        }
        if access("/usr/bin/fio", X_OK) == 0 {
            plan.append(("fio", 200, (dmaemud.map { ["--dmaemud", $0] } ?? []) + pick([], ["--seconds", "1", "--runs", "1", "--warmup", "0"])))
        }
        let skipped = Set(skip.split(separator: ",").map(String.init))
        return plan.filter { !skipped.contains($0.name) }
    }

    func run() throws {
        try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
        let compiled = CLimits(sources: limits, into: out)
        var results = BenchResults.current(quick: quick)
        results.errors = compiled.failures
        let plan = self.plan(compiled)
        Progress.shared.plan(plan.enumerated().map { (name: label($0.offset, plan), weight: $0.element.weight) })
        if let memcpy = compiled.memcpyLimit {
            do { results.memcpy = try runLimit(memcpy, [], as: MemcpyRun.self) } catch { results.errors.append("memcpy_limit: \(error)") }
        }
        for (index, step) in plan.enumerated() {
            Progress.shared.begin(label(index, plan))
            do {
                try measure(step.name, step.arguments, into: &results)
            } catch {
                results.errors.append("\(step.name) \(step.arguments.joined(separator: " ")): \(error)")
            }
        }
        Progress.shared.finish()
        try write(results, to: out)
        print(try String(contentsOfFile: out + "/report.md", encoding: .utf8), terminator: "")
        print("\nwritten: \(out)/results.json, \(out)/report.md, \(out)/*.svg")
        if !results.errors.isEmpty { throw ExitCode.failure }
    }

    /// The bar's name for a step: the subcommand, numbered when it runs more than once.
    private func label(_ index: Int, _ plan: [(name: String, weight: Double, arguments: [String])]) -> String {
        let name = plan[index].name
        let same = plan.indices.filter { plan[$0].name == name }
        return same.count == 1 ? name : "\(name) \(same.firstIndex(of: index)! + 1)/\(same.count)"
    }

    private func measure(_ name: String, _ arguments: [String], into results: inout BenchResults) throws {
        switch name {
        case "mpt3sas": results.mpt3sas = try MPT3SASBench.parse(arguments).measure()
        case "scaling": results.scaling = try ScalingBench.parse(arguments).measure()
        case "dmapool-test": results.dmapoolTest = try DMAPoolTestBench.parse(arguments).measure()
        case "map": results.map.append(try MapBench.parse(arguments).measure())
        case "probe": results.probe = try ProbeBench.parse(arguments).measure()
        case "swiotlb-io": results.swiotlbIo = try SWIOTLBIOBench.parse(arguments).measure()
        case "dmcrypt": results.dmcrypt += try DMCryptBench.parse(arguments).measure()
        case "fuse": results.fuse = try FUSEBench.parse(arguments).measure()
        case "fio": results.fio = try FioBench.parse(arguments).measure()
        case "trace": results.trace = try TraceBench.parse(arguments).measure()
        case "xts": results.xts = try XTSBench.parse(arguments).measure()
        case "pages": results.pages = try PagesBench.parse(arguments).measure()
        case "nvme-queues": results.nvmeQueues = try NVMeQueueBench.parse(arguments).measure()
        default: throw BenchError(description: "no subcommand \(name)")
        }
    }
}

/// results.json, report.md and the plots into `directory`.
func write(_ results: BenchResults, to directory: String, images: String = "", plotWidth: Double = 720) throws {
    try BenchJSON.encode(results, pretty: true).write(to: URL(fileURLWithPath: directory + "/results.json"))
    try ("# dmaemu-bench report\n\n" + Report.markdown(results, images: images)).write(toFile: directory + "/report.md", atomically: true, encoding: .utf8)
    try writePlots(results, to: directory, width: plotWidth)
}

func writePlots(_ results: BenchResults, to directory: String, width: Double) throws {
    var figures: [(String, Figure)] = []
    if let scaling = results.scaling { figures.append(("scaling.svg", Plots.scaling(scaling, width: width))) }
    if let io = results.swiotlbIo { figures.append(("swiotlb-growth.svg", Plots.swiotlbGrowth(io, width: width))) }
    if !results.dmcrypt.isEmpty { figures.append(("dmcrypt.svg", Plots.dmcrypt(results.dmcrypt, width: width))) }
    for (name, figure) in figures {
        try figure.render().write(toFile: directory + "/" + name, atomically: true, encoding: .utf8)
    }
}

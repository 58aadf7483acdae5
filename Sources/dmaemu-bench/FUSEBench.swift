// The control tree through FUSE: dmaemud and tools/limits/fuse_hello.c mounted side by
// side, both timed by tools/limits/fuse_rw.py in interleaved rounds (cat of a pools
// file, echo 1 > alloc), and `echo 373959 > alloc` against the engine's own time for the
// same allocations. Needs root (or fusermount3) and /dev/fuse.
import ArgumentParser
import DMAPool
import Foundation

struct FUSEBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "fuse", abstract: "cat and echo through dmaemud's FUSE tree beside fuse_hello.c.")

    @Option(help: "A compiled tools/limits/fuse_hello.c.") var limit: String
    @Option(help: "The timer, tools/limits/fuse_rw.py.") var timer = "tools/limits/fuse_rw.py"
    @Option(help: "The dmaemud to mount (default: the one beside this program).") var dmaemud: String?
    @Option(help: "Operations per timing.") var operations = 3000
    @Option(help: "Interleaved rounds; medians are reported (the first round's large echo pays first-touch faults).") var rounds = 5
    @Option(help: "Blocks of the large echo (the seed's chain pool).") var blocks = 373_959
    @Flag(help: "The result as one line of JSON.") var json = false

    func validate() throws {
        guard (1...1_000_000).contains(operations) else { throw ValidationError("--operations must be 1...1000000") }
        guard (1...50).contains(rounds) else { throw ValidationError("--rounds must be 1...50") }
        guard (1...10_000_000).contains(blocks) else { throw ValidationError("--blocks must be 1...10000000") }
    }

    struct Timing: Decodable { var usPerOp: Double }

    func run() throws {
        let result = try measure()
        if json { return try BenchJSON.print(result) }
        print(Report.fuse(result), terminator: "")
    }

    func measure() throws -> FUSEResult {
        Progress.shared.begin("fuse")
        var template = Array("/tmp/dmaemu-bench-fuse.XXXXXX".utf8CString)
        guard let made = mkdtemp(&template) else { throw BenchError(description: "mkdtemp: \(String(cString: strerror(errno)))") }
        let work = String(cString: made), hello = work + "/hello", mount = work + "/dmaemu"
        try FileManager.default.createDirectory(atPath: hello, withIntermediateDirectories: false)
        try FileManager.default.createDirectory(atPath: mount, withIntermediateDirectories: false)
        let daemonPath = dmaemud ?? URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("dmaemud").path
        // Both in the foreground, so that SIGTERM unmounts them (DMAEmuBench.main clears
        // the signal mask they inherit).
        let helloServer = try startServer(limit, ["-f", hello])
        let daemon = try startServer(daemonPath, [mount])
        defer {
            stopServer(daemon, mount)
            stopServer(helloServer, hello)
            try? FileManager.default.removeItem(atPath: work)
        }
        let device = mount + "/devices/0000:00:04.0"
        try waitForPath(device + "/create_pool")
        try waitForPath(hello + "/alloc")
        try writeFile(device + "/create_pool", "small 128 16")

        func time(_ path: String, write text: String? = nil) throws -> Double {
            let arguments = [timer, "-n", String(operations)] + (text.map { ["--write", $0] } ?? []) + [path]
            guard let line = try runLimit("/usr/bin/env", ["python3"] + arguments, as: Timing.self).first else {
                throw BenchError(description: "fuse_rw.py printed nothing")
            }
            return line.usPerOp
        }
        var catPools: [Double] = [], catHello: [Double] = [], echoAlloc: [Double] = [], echoHello: [Double] = [], bigEcho: [Double] = []
        for round in 1...rounds {
            catHello.append(try time(hello + "/pools"))
            catPools.append(try time(device + "/pools"))
            echoHello.append(try time(hello + "/alloc", write: "1"))
            echoAlloc.append(try time(device + "/dma_pools/small/alloc", write: "1"))
            try writeFile(device + "/create_pool", "chain\(round) 128 16")
            let start = ContinuousClock.now
            try writeFile(device + "/dma_pools/chain\(round)/alloc", String(blocks))
            bigEcho.append(milliseconds(since: start))
            // Gone again, so the pools file timed next round is the same two lines as
            // fuse_hello's, not one more line per round.
            try writeFile(device + "/dma_pools/chain\(round)/free", "all")
            try writeFile(device + "/destroy_pool", "chain\(round)")
            Progress.shared.step(round, of: rounds + 1)
        }
        // The engine on RAM it has used before, as the daemon's rounds after the first are
        // (each round's chain pool reuses the pages the last one gave back).
        let engineDevice = try benchDevice("0000:00:04.0")
        _ = try poolLoop(.stack, count: blocks, size: 128, device: engineDevice)
        let engine = try (0..<rounds).map { _ in try poolLoop(.stack, count: blocks, size: 128, device: engineDevice).allocMs }
        return FUSEResult(
            rounds: rounds, operations: operations, catPoolsUs: medianOf(catPools), catHelloUs: medianOf(catHello),
            echoAllocUs: medianOf(echoAlloc), echoHelloUs: medianOf(echoHello), blocks: blocks, bigEchoMs: medianOf(bigEcho),
            engineAllocMs: medianOf(engine))
    }
}

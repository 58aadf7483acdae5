// What each subcommand measured, as data: printed by --json (one line), gathered by `all`
// into results.json, and rendered by Report and Plots. Keys are snake_case in JSON.
import Foundation

struct PoolLoop: Codable {
    var algorithm: String
    var allocMs: Double
    var freeMs: Double
    var pages: Int
    var blocks: Int
}

/// One line of tools/limits/pool_limit.c: impl is "c-stack" or "c-legacy".
struct CPoolRun: Codable {
    var impl: String
    var count: Int
    var size: Int
    var allocMs: Double
    var freeMs: Double
    var pages: Int
    var blocks: Int
}

/// One line of tools/limits/memcpy_limit.c.
struct MemcpyRun: Codable {
    var bytes: Int
    var nsPerCopy: Double
    var gbPerS: Double
}

struct MPT3SASResult: Codable {
    var count: Int
    var size: Int
    var runs: Int
    var algorithms: [PoolLoop]
    var limits: [CPoolRun]
}

struct DMAPoolTestResult: Codable {
    struct Entry: Codable {
        var algorithm: String
        var size: Int
        var align: Int
        var boundary: Int
        var blocks: Int
        var timeUs: Int
    }
    var iterations: Int
    var entries: [Entry]
}

struct MapResult: Codable {
    var threads: Int
    var seconds: Int
    var bits: Int
    var dir: String
    var granule: Int
    var force: Bool
    var debugfs: Bool
    var loops: Int
    var avgMapNs: Double
    var mapStddevNs: Double
    var avgUnmapNs: Double
    var unmapStddevNs: Double
    var bounced: Bool
    /// The kernel tool's three lines.
    var toolOutput: String
    /// With a limit: a map+unmap pair timed in an untimed loop, and the memcpy beside it.
    var loopPairNs: Double?
    var memcpy: MemcpyRun?
}

struct ProbeResult: Codable {
    var algorithm: String
    var runs: Int
    var probeMs: Double
    var removeMs: Double
}

struct SWIOTLBIOResult: Codable {
    struct Row: Codable {
        var workload: String
        var baseMibS: Double
        var baseVarPct: Double
        var defaultMibS: Double
        var defaultVarPct: Double
        var defaultDiffPct: Double
        var growingMibS: Double
        var growingVarPct: Double
        var growingDiffPct: Double
    }
    /// One sample of the growing machine while small, big and 4way run back to back.
    struct Sample: Codable {
        var ms: Double
        var workload: String
        var used: Int
        var nslabs: Int
        var transientNslabs: Int
        var pools: Int
    }
    var runs: Int
    var mib: Int
    var rows: [Row]
    var grownNslabs: Int
    var timeline: [Sample]
}

struct DMCryptResult: Codable {
    var pageAlloc: String
    var cipher: String
    var iodepth: Int
    var mib: Int
    var runs: Int
    var mibPerS: Double
    var allocUsPerBio: Double
}

/// Time per operation against the number of blocks in the pool.
struct ScalingResult: Codable {
    struct Point: Codable {
        var algorithm: String
        var blocks: Int
        var repeats: Int
        var allocNsPerOp: Double
        var freeNsPerOp: Double
    }
    var size: Int
    var points: [Point]
    /// pool_limit.c's stack shape at the same counts, when it was given.
    var limits: [CPoolRun]
}

struct FUSEResult: Codable {
    var rounds: Int
    var operations: Int
    var catPoolsUs: Double
    var catHelloUs: Double
    var echoAllocUs: Double
    var echoHelloUs: Double
    var blocks: Int
    var bigEchoMs: Double
    var engineAllocMs: Double
}

/// fio's bandwidth for the seeds' jobs: each cell's job, what it ran on (a page_alloc
/// mode, a swiotlb kernel, or tmpfs for the limits), its mean and coefficient of variance.
struct FioResult: Codable {
    struct Cell: Codable {
        var job: String
        var target: String
        var mibS: Double
        var varPct: Double
    }
    var seconds: Int
    var runs: Int
    var crypt: [Cell] = []
    var swiotlb: [Cell] = []
    var limits: [Cell] = []
}

/// dm-crypt's cipher alone on one core, and libcrypto's aes-256-xts beside it.
struct XTSResult: Codable {
    var seconds: Int
    var runs: Int
    var mibPerS: Double
    /// xts_limit.c: 512-byte sectors, one IV each; 16 KiB units.
    var limitSectorMibPerS: Double?
    var limitLargeMibPerS: Double?
}

/// NVMe completion inline and in a controller thread per queue, and handoff_limit.c beside.
struct NVMeQueueResult: Codable {
    static let modes = ["inline", "thread"]
    struct Mode: Codable {
        var completion: String
        var depth1UsPerRequest: Double
        var depth1MibPerS: Double
        /// One thread at iodepth 32, and iodepth 1 on a thread per core.
        var depth32MibPerS: Double
        var depth1AllCoresMibPerS: Double
    }
    var requests: Int
    var runs: Int
    var cores: Int
    var modes: [Mode]
    /// handoff_limit.c: a round trip to another thread, sleeping and polling.
    var limitSleepNs: Double?
    var limitPollNs: Double?
}

/// The page allocator through the per-CPU lists, and page_limit.c beside it.
struct PagesResult: Codable {
    var runs: Int
    /// Medians over the runs.
    var pairOrder0Ns: Double
    var pairOrder4Ns: Double
    var bulkAllocNsPerPage: Double
    var bulkFreeNsPerPage: Double
    var limitPairNs: Double?
    var limitBulkAllocNsPerPage: Double?
    var limitBulkFreeNsPerPage: Double?
}

struct TraceResult: Codable {
    /// A bounced 4 KiB map+unmap pair, tracing off and on.
    var pairOffNs: Double
    var pairOnNs: Double
    var eventsPerPair: Int
    /// The replayed recording's events, and the rates of its parse and its replay.
    var events: Int
    var parseEventsPerS: Double
    var replayEventsPerS: Double
    var limitRingWriteNs: Double?
    var limitParseEventsPerS: Double?

    var nsPerEvent: Double { (pairOnNs - pairOffNs) / Double(eventsPerPair) }
}

/// results.json: every section `all` ran, with the machine and the C limits of the run.
struct BenchResults: Codable {
    struct Host: Codable {
        var cpus: Int
        var kernel: String
        var memoryGib: Double
    }
    var date: String
    var host: Host
    var quick: Bool
    var memcpy: [MemcpyRun] = []
    var mpt3sas: MPT3SASResult?
    var dmapoolTest: DMAPoolTestResult?
    var scaling: ScalingResult?
    var map: [MapResult] = []
    var probe: [ProbeResult] = []
    var swiotlbIo: SWIOTLBIOResult?
    var dmcrypt: [DMCryptResult] = []
    var xts: XTSResult?
    var pages: PagesResult?
    var nvmeQueues: NVMeQueueResult?
    var fuse: FUSEResult?
    var fio: FioResult?
    var trace: TraceResult?
    /// Subcommands that failed, with their error; the others still report.
    var errors: [String] = []

    static func current(quick: Bool) -> BenchResults {
        var name = utsname()
        uname(&name)
        let release = withUnsafeBytes(of: &name.release) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        let info = ProcessInfo.processInfo
        return BenchResults(
            date: ISO8601DateFormatter().string(from: Date()),
            host: Host(cpus: info.activeProcessorCount, kernel: release, memoryGib: Double(info.physicalMemory) / Double(1 << 30)),
            quick: quick)
    }
}

enum BenchJSON {
    static func encode<T: Encodable>(_ value: T, pretty: Bool = false) throws -> Data {
        let encoder = JSONEncoder()
        encoder.keyEncodingStrategy = .convertToSnakeCase
        encoder.outputFormatting = pretty ? [.prettyPrinted, .sortedKeys] : [.sortedKeys]
        return try encoder.encode(value)
    }

    static func decode<T: Decodable>(_ type: T.Type, from data: Data) throws -> T {
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        return try decoder.decode(type, from: data)
    }

    /// --json: the result on one line of stdout.
    static func print<T: Encodable>(_ value: T) throws {
        Swift.print(String(decoding: try encode(value), as: UTF8.self))
    }
}

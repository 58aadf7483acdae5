// `dmaemu-bench xts`: dm-crypt's cipher alone, aes-xts-plain64 with a 64-byte key
// (XTS-AES-256) on one core, 1 MiB at a time, beside tools/limits/xts_limit.c in the same
// run: libcrypto's own aes-256-xts on 512-byte sectors (one IV each, as dm-crypt needs
// it) and on 16 KiB units (what `openssl speed -evp aes-256-xts` times at most, the
// issue's yardstick), runs interleaved.
import ArgumentParser
import DMCrypt
import Foundation

struct XTSBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "xts", abstract: "dm-crypt's aes-xts-plain64 on one core, beside libcrypto's aes-256-xts.")

    @Option(help: "Seconds per measurement (1...30).") var seconds = 2
    @Option(help: "Runs, interleaved with the limit's; the medians are reported (1...20).") var runs = 3
    @Option(help: "A compiled tools/limits/xts_limit.c to run beside.") var limit: String?
    @Flag(help: "The result as one line of JSON.") var json = false

    func validate() throws {
        guard (1...30).contains(seconds) else { throw ValidationError("--seconds: 1...30") }
        guard (1...20).contains(runs) else { throw ValidationError("--runs: 1...20") }
    }

    func run() throws {
        let result = try measure()
        if json { return try BenchJSON.print(result) }
        print(Report.xts(result), terminator: "")
    }

    struct LimitRun: Decodable {
        var unit: Int
        var mibS: Double
    }

    func measure() throws -> XTSResult {
        Progress.shared.begin("xts")
        var ours: [Double] = [], sector: [Double] = [], large: [Double] = []
        for run in 0..<runs {
            ours.append(try AESXTSSpeed.encrypt(keyBytes: 64, seconds: Double(seconds)))
            if let limit {
                let lines = try runLimit(limit, [String(seconds)], as: LimitRun.self)
                sector += lines.filter { $0.unit == 512 }.map(\.mibS)
                large += lines.filter { $0.unit == 16384 }.map(\.mibS)
            }
            Progress.shared.step(run + 1, of: runs)
        }
        func median(_ values: [Double]) -> Double? { values.isEmpty ? nil : values.sorted()[values.count / 2] }
        return XTSResult(seconds: seconds, runs: runs, mibPerS: median(ours)!, limitSectorMibPerS: median(sector),
                         limitLargeMibPerS: median(large))
    }
}

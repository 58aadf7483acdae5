// fio, the seeds' own tool (Debian's package), against dmaemud's mounted disks, with the
// seeds' job shapes, reporting fio's own bandwidth (its JSON) beside the seeds' and beside
// the same job on a tmpfs file (no FUSE, no emulation: the host moving those bytes).
// - Yang Shi's dm-crypt job: 1 MiB sequential direct writes, one job at iodepth 256, on
//   dm-crypt (aes-xts-plain64) over an NVMe RAM disk, one dm device per page_alloc mode.
// - Petr Tesarik's small / big / 4way: mixed reads and writes of 4 KiB (one job), 64 KiB
//   (one job) and 4 KiB (four jobs), synchronous, on an HBA that always bounces (a 32-bit
//   mask on an 8 GiB machine), for a fixed 64 MiB swiotlb (base), the dynamic one (default)
//   and the dynamic one booted with 1 MiB (growing).
import ArgumentParser
import Foundation

struct FioBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "fio", abstract: "The seeds' fio jobs against dmaemud's disks, beside the seeds and a tmpfs file.")

    @Option(help: "Seconds each fio job runs.") var seconds = 5
    @Option(help: "Runs of each cell (the swiotlb seed: 5).") var runs = 3
    @Option(help: "Seconds of the untimed run before each cell's (0: none).") var warmup = 1
    @Option(help: "The dmaemud to mount (default: the one beside this program).") var dmaemud: String?
    @Option(help: "fio.") var fio = "/usr/bin/fio"
    @Flag(help: "The result as one line of JSON.") var json = false

    func validate() throws {
        guard (1...600).contains(seconds) else { throw ValidationError("--seconds must be 1...600") }
        guard (1...50).contains(runs) else { throw ValidationError("--runs must be 1...50") }
        guard (0...60).contains(warmup) else { throw ValidationError("--warmup must be 0...60") }
    }

    func run() throws {
        let result = try measure()
        if json { return try BenchJSON.print(result) }
        print(Report.fio(result), terminator: "")
    }

    struct Job {
        let name: String
        let arguments: [String]
    }

    static func cryptJob(seconds: Int) -> Job {
        Job(name: "crypt", arguments: ["--rw=write", "--bs=1M", "--ioengine=libaio", "--direct=1", "--iodepth=256", "--numjobs=1"]
            + timed(seconds, size: "1G"))
    }

    /// Yang Shi's job once over the whole disk, untimed.
    static let cryptFill = Job(name: "crypt-fill", arguments: ["--rw=write", "--bs=1M", "--ioengine=libaio", "--direct=1",
                                                               "--iodepth=256", "--size=1G"])

    /// The range the swiotlb jobs use, once, untimed.
    static let swiotlbFill = Job(name: "swiotlb-fill", arguments: ["--rw=write", "--bs=1M", "--ioengine=libaio", "--direct=1",
                                                                   "--iodepth=16", "--size=1G"])

    static func swiotlbJobs(seconds: Int) -> [Job] {
        [("small", "4k", 1), ("big", "64k", 1), ("4way", "4k", 4)].map { name, bs, jobs in
            Job(name: name, arguments: ["--rw=rw", "--bs=\(bs)", "--ioengine=psync", "--direct=1", "--numjobs=\(jobs)",
                                        "--offset_increment=256M", "--group_reporting"] + timed(seconds, size: "256M"))
        }
    }

    static func timed(_ seconds: Int, size: String) -> [String] { ["--runtime=\(seconds)", "--time_based", "--size=\(size)"] }

    /// fio's read + write bandwidth for `job` on `file`, in MiB/s, after the warm-up.
    func bandwidth(_ job: Job, _ file: String) throws -> Double {
        try warmUp(job, file)
        return try fioRun(job, file)
    }

    /// An untimed run that faults the disk's RAM in and lets swiotlb grow, as the seed's
    /// figures come from machines past their first run.
    func warmUp(_ job: Job, _ file: String) throws {
        if warmup > 0 { _ = try fioRun(job, file, extra: ["--runtime=\(warmup)"]) }
    }

    func fioRun(_ job: Job, _ file: String, extra: [String] = []) throws -> Double {
        // fio takes ':' in a file name as a separator between files.
        let name = file.replacingOccurrences(of: ":", with: "\\:")
        let output = try runProgram(fio, ["--name=\(job.name)", "--filename=\(name)", "--output-format=json"] + job.arguments + extra)
        guard let start = output.firstIndex(of: "{"),
              let top = try JSONSerialization.jsonObject(with: Data(output[start...].utf8)) as? [String: Any],
              let jobs = top["jobs"] as? [[String: Any]], !jobs.isEmpty
        else { throw BenchError(description: "fio printed no jobs for \(job.name) on \(file)") }
        var kib = 0.0
        for entry in jobs {
            if let error = entry["error"] as? Int, error != 0 { throw BenchError(description: "fio \(job.name) on \(file): error \(error)") }
            for side in ["read", "write"] { kib += ((entry[side] as? [String: Any])?["bw"] as? NSNumber)?.doubleValue ?? 0 }
        }
        return kib / 1024
    }

    /// The machine: an always-bouncing HBA, and NVMe disks for dm-crypt.
    static func config(swiotlb: String, dynamic: Bool) -> String {
        """
        [machine]
        ram = "8G"
        [swiotlb]
        size = "\(swiotlb)"
        dynamic = \(dynamic)
        [[device]]
        driver = "mpt3sas"
        name = "hba0"
        capacity = "2G"
        dma_mask_bits = 32
        """ + DMCryptBench.modes.indices.map { "\n[[device]]\ndriver = \"nvme\"\nname = \"nvme\($0)\"\ncapacity = \"1G\"" }.joined()
    }

    /// dmaemud on `config` at a fresh mountpoint while `body` runs.
    func withDaemon<R>(_ config: String, _ body: (String) throws -> R) throws -> R {
        var template = Array("/tmp/dmaemu-bench-fio.XXXXXX".utf8CString)
        guard let made = mkdtemp(&template) else { throw BenchError(description: "mkdtemp: \(String(cString: strerror(errno)))") }
        let work = String(cString: made), mount = work + "/mnt", file = work + "/machine.toml"
        try FileManager.default.createDirectory(atPath: mount, withIntermediateDirectories: false)
        try config.write(toFile: file, atomically: false, encoding: .utf8)
        let daemonPath = dmaemud ?? URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("dmaemud").path
        let daemon = try startServer(daemonPath, [mount, "--config", file])
        defer {
            stopServer(daemon, mount)
            try? FileManager.default.removeItem(atPath: work)
        }
        try waitForPath(mount + "/devices/hba0/disk")
        return try body(mount)
    }

    func measure() throws -> FioResult {
        Progress.shared.begin("fio")
        let steps = 2 + SWIOTLBIOBench.Kernel.allCases.count
        var result = FioResult(seconds: seconds, runs: runs)
        let key = (0..<64).map { _ in String(format: "%02x", UInt8.random(in: 0...255)) }.joined()
        let crypt = Self.cryptJob(seconds: seconds)
        try withDaemon(Self.config(swiotlb: "64M", dynamic: true)) { mount in
            for (index, mode) in DMCryptBench.modes.enumerated() {
                try writeFile(mount + "/control/add_device", "dm-crypt dm-\(index) lower=nvme\(index) key=\(key) page_alloc=\(mode)")
                // The whole disk written once first: a sparse RAM disk's first touch of each
                // page costs the host a fault, and a warm-up of a second covered half of it
                // (the first 3 s cell read 330-920 MiB/s, the next ones 1170-1390).
                let disk = mount + "/devices/dm-\(index)/disk"
                _ = try fioRun(Self.cryptFill, disk)
                let figures = try (0..<runs).map { _ in try fioRun(crypt, disk) }
                result.crypt.append(.init(job: crypt.name, target: mode, mibS: mean(figures), varPct: variation(figures)))
            }
        }
        Progress.shared.step(1, of: steps)
        for (index, kernel) in SWIOTLBIOBench.Kernel.allCases.enumerated() {
            let config = Self.config(swiotlb: kernel == .growing ? "1M" : "64M", dynamic: kernel != .base)
            try withDaemon(config) { mount in
                // What the jobs cover (4way's four 256 MiB ranges) written once: as for the
                // crypt cells, first touches made the first kernel's cells (base) read
                // 13-18% below the others; filled, the three read alike.
                _ = try fioRun(Self.swiotlbFill, mount + "/devices/hba0/disk")
                for job in Self.swiotlbJobs(seconds: seconds) {
                    let disk = mount + "/devices/hba0/disk"
                    try warmUp(job, disk)
                    let figures = try (0..<runs).map { _ in try fioRun(job, disk) }
                    result.swiotlb.append(.init(job: job.name, target: kernel.rawValue, mibS: mean(figures), varPct: variation(figures)))
                }
            }
            Progress.shared.step(index + 2, of: steps)
        }
        // The limit: the same jobs on a tmpfs file (O_DIRECT there since Linux 6.6).
        let tmpfs = "/dev/shm/dmaemu-bench-fio.\(getpid())"
        defer { unlink(tmpfs) }
        result.limits.append(.init(job: crypt.name, target: "tmpfs", mibS: try bandwidth(crypt, tmpfs), varPct: 0))
        for job in Self.swiotlbJobs(seconds: seconds) {
            result.limits.append(.init(job: job.name, target: "tmpfs", mibS: try bandwidth(job, tmpfs), varPct: 0))
        }
        Progress.shared.step(steps, of: steps)
        return result
    }

    func mean(_ values: [Double]) -> Double { values.reduce(0, +) / Double(max(values.count, 1)) }

    /// The coefficient of variance, in percent, as the seed's "var" columns.
    func variation(_ values: [Double]) -> Double {
        let m = mean(values)
        guard values.count > 1, m > 0 else { return 0 }
        let variance = values.reduce(0) { $0 + ($1 - m) * ($1 - m) } / Double(values.count - 1)
        return variance.squareRoot() / m * 100
    }
}

// dmaemu-replay: a recording of a real host's DMA (tools/dmaemu-record), or a trace saved
// from any 6.12+ kernel, replayed on dmaemu's engines with the host's parameters or any
// others, to answer what swiotlb size, areas or CONFIG_SWIOTLB_DYNAMIC would have done.
import ArgumentParser
import Daemon
import DMAPool
import Foundation
import Lib
import Replay
import SWIOTLB

@main
struct DMAEmuReplay: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dmaemu-replay",
        abstract: "Replay a recorded DMA trace on dmaemu's engines, on the host's parameters or others.",
        discussion: """
            RECORDING is what tools/dmaemu-record wrote, or the text of a tracefs `trace` or \
            `trace_pipe` with the dma and swiotlb events (then the machine comes from --config, \
            the options and the kernel's defaults). Examples:
              dmaemu-replay host.rec
              dmaemu-replay host.rec --swiotlb 16M --areas 4 --no-dynamic
              dmaemu-replay host.rec --sweep swiotlb=1M,4M,16M,64M --sweep dynamic=0,1
              dmaemu-replay host.rec --trace replay.trace && diff <(cut -c34- host.rec) <(cut -c34- replay.trace)
            """)

    @Argument(help: "The recording, or a saved trace.") var recording: String
    @Option(help: "A dmaemu.toml whose [machine] and [swiotlb] the replay starts from (instead of the recorded host).")
    var config: String?
    @Option(help: "RAM (e.g. 16G); raised to reach the highest recorded address.") var ram: String?
    @Option(help: "The boot swiotlb's size (e.g. 64M).") var swiotlb: String?
    @Option(help: "swiotlb areas (rounded up to a power of two).") var areas: Int?
    @Flag(inversion: .prefixedNo, help: "CONFIG_SWIOTLB_DYNAMIC: add pools, and transient ones meanwhile.") var dynamic: Bool?
    @Flag(inversion: .prefixedNo, help: "swiotlb=force: every map bounces.") var force: Bool?
    @Flag(inversion: .prefixedNo, help: "A confidential (SEV/TDX) guest: every map bounces, the pool sized 6% of RAM.")
    var confidential: Bool?
    @Option(help: "The dmapool generation of the machine: stack, rbtree or legacy (the report shows all three).")
    var dmapool: String?
    @Option(help: "CPUs (at least the highest the recording names).") var cpus: Int?
    @Option(
        name: .customLong("device"),
        help: "NAME:key=value,... with driver=, mask=, coherent-mask= (bits), min-align=, boundary= (masks).")
    var deviceOptions: [String] = []
    @Option(help: "One axis of a sweep: swiotlb=1M,4M,..., areas=1,2,... or dynamic=0,1; repeat for more.") var sweep: [String] = []
    @Option(help: "Write dmaemu's own trace of the replay here, in the kernel's format.") var trace: String?
    @Flag(help: "Count bad lines and leave them out instead of stopping at the first.") var skipBad = false
    @Flag(help: "The report as JSON.") var json = false

    func run() throws {
        let options = try replayOptions()
        let base = try config.map { path -> ReplayBase in
            let machine = try MachineConfig(contentsOfFile: path)
            return ReplayBase(ramBytes: machine.ramBytes, swiotlb: machine.swiotlb, dmapool: machine.dmapoolAlgorithm)
        }
        let parsed: Recording
        do {
            parsed = try RecordingParser(skipBad: skipBad).parse(contentsOf: recording)
        } catch let error as RecordingError {
            throw fail("\(recording): \(error)" + (skipBad ? "" : " (--skip-bad leaves such lines out)"))
        } catch {
            throw fail("\(recording): cannot read: \(error)")
        }
        guard !parsed.ops.isEmpty else {
            let skipped = parsed.skippedLines > 0 ? " (\(parsed.skippedLines) bad lines skipped)" : ""
            throw fail("\(recording): no dma, swiotlb or dmapool events in \(parsed.lines) lines\(skipped)")
        }
        if !sweep.isEmpty {
            let axes = try sweep.map { text in
                do { return try SweepAxis(text) } catch let error as SweepError { throw ValidationError(error.description) }
            }
            let rows: [SweepRow]
            do { rows = try ReplaySweep.run(parsed, options: options, base: base, axes: axes) } catch let error as ReplayError {
                throw fail("\(recording): \(error)")
            }
            if json {
                let encoder = JSONEncoder()
                encoder.keyEncodingStrategy = .convertToSnakeCase
                encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
                print(String(decoding: try encoder.encode(rows), as: UTF8.self))
            } else {
                print(ReplaySweep.text(rows), terminator: "")
            }
            return
        }
        let setup = ReplaySetup(recording: parsed, options: options, base: base)
        var output: FileHandle?
        if let trace {
            guard FileManager.default.createFile(atPath: trace, contents: nil), let handle = FileHandle(forWritingAtPath: trace) else {
                throw ValidationError("--trace \(trace): cannot create the file")
            }
            output = handle
        }
        defer { try? output?.close() }
        let replayer: Replayer
        do {
            replayer = try Replayer(parsed, setup: setup, trace: output.map { handle in { handle.write(Data($0.utf8)) } })
        } catch let error as ReplayError {
            throw fail("\(recording): \(error)")
        }
        replayer.run()
        let report = ReplayReport(path: recording, recording: parsed, replayer: replayer)
        print(json ? try report.json() : report.text, terminator: "")
    }

    /// A recording that cannot be replayed is not a usage error: its reason, and exit 1.
    func fail(_ text: String) -> ExitCode {
        FileHandle.standardError.write(Data("dmaemu-replay: \(text)\n".utf8))
        return ExitCode.failure
    }

    func replayOptions() throws -> ReplayOptions {
        var options = ReplayOptions()
        func size(_ text: String, _ flag: String) throws -> UInt64 {
            do { return try StoreParsing.size(text, max: 1 << 44) } catch { throw ValidationError("--\(flag) \(text): not a size") }
        }
        options.ramBytes = try ram.map { try size($0, "ram") }
        options.swiotlbBytes = try swiotlb.map { Int(try size($0, "swiotlb")) }
        if let bytes = options.swiotlbBytes, bytes < 2048 { throw ValidationError("--swiotlb: at least one 2 KiB slot") }
        if let areas, !(1...65536).contains(areas) { throw ValidationError("--areas \(areas): 1...65536") }
        options.areas = areas
        options.dynamic = dynamic
        options.force = force
        options.confidential = confidential
        if let dmapool {
            guard let algorithm = DMAPoolAlgorithm(rawValue: dmapool) else {
                throw ValidationError("--dmapool \(dmapool): one of stack, rbtree, legacy")
            }
            options.dmapool = algorithm
        }
        if let cpus, !(1...4096).contains(cpus) { throw ValidationError("--cpus \(cpus): 1...4096") }
        options.cpus = cpus
        for text in deviceOptions {
            let (name, device) = try Self.device(text)
            options.devices[name] = device
        }
        return options
    }

    static func device(_ text: String) throws -> (String, DeviceOptions) {
        // The name has colons of its own (0000:00:02.0): the settings follow the last one before a "=".
        guard let equals = text.firstIndex(of: "="), let colon = text[..<equals].lastIndex(of: ":") else {
            throw ValidationError("--device \(text): expected NAME:key=value,...")
        }
        var device = DeviceOptions()
        for pair in text[text.index(after: colon)...].split(separator: ",") {
            let parts = pair.split(separator: "=", maxSplits: 1).map(String.init)
            guard parts.count == 2 else { throw ValidationError("--device \(text): '\(pair)' is not key=value") }
            func bits() throws -> Int {
                guard let bits = Int(parts[1]), (1...64).contains(bits) else { throw ValidationError("--device \(text): \(parts[0]) takes 1...64 bits") }
                return bits
            }
            func mask() throws -> UInt64 {
                do { return try StoreParsing.number(parts[1]) } catch { throw ValidationError("--device \(text): \(parts[0]) takes a number") }
            }
            switch parts[0] {
            case "driver": device.driver = parts[1]
            case "mask": device.maskBits = try bits()
            case "coherent-mask": device.coherentMaskBits = try bits()
            case "min-align": device.minAlignMask = try mask()
            case "boundary": device.boundaryMask = try mask()
            default: throw ValidationError("--device \(text): no setting '\(parts[0])' (driver, mask, coherent-mask, min-align, boundary)")
            }
        }
        return (String(text[..<colon]), device)
    }
}

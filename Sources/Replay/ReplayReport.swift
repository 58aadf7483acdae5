// The replay's report: what was recorded, the machine it ran on, and what happened, as
// text for a terminal and as one JSON document (--json).
import DMAPool
import Foundation
import SWIOTLB

public struct ReplayReport: Codable, Sendable {
    public struct RecordingSummary: Codable, Sendable {
        public var path: String
        public var release: String?
        public var kernel: String
        public var cpus: Int?
        public var memoryBytes: UInt64?
        public var lines: Int
        public var operations: Int
        public var seconds: Double
        public var notReplayed: [String: Int]
        public var skippedLines: Int
        public var firstSkipped: String?
        public var lost: [String: Int]
        public var reordered: Int
        /// The host's debugfs swiotlb counters at the end, when the recorder saved them.
        public var debugfs: [String: Int]
    }

    public struct Machine: Codable, Sendable {
        public var ramBytes: UInt64
        public var cpus: Int
        public var kernel: String
        public var swiotlbBytes: Int
        public var slots: Int
        public var areas: Int
        public var dynamic: Bool
        public var force: Bool
        public var confidential: Bool
        public var poolStart: UInt64?
        public var dmapool: String
        public var devices: [ReplayDevice]
        public var notes: [String]
    }

    public var recording: RecordingSummary
    public var machine: Machine
    public var result: ReplayResult

    public init(path: String, recording: Recording, replayer: Replayer) {
        let setup = replayer.setup
        self.recording = RecordingSummary(
            path: path, release: recording.header.release, kernel: recording.kernel.rawValue,
            cpus: recording.header.cpus ?? recording.headerCPUs, memoryBytes: recording.header.memoryBytes, lines: recording.lines,
            operations: recording.ops.count, seconds: recording.seconds, notReplayed: recording.notReplayed,
            skippedLines: recording.skippedLines, firstSkipped: recording.firstSkipped?.description,
            lost: Dictionary(uniqueKeysWithValues: recording.lost.map { ("\($0.key)", $0.value) }), reordered: recording.reordered,
            debugfs: recording.header.debugfs)
        let boot = replayer.swiotlb?.pools.first
        machine = Machine(
            ramBytes: setup.ramBytes, cpus: setup.cpus, kernel: setup.kernel.rawValue, swiotlbBytes: (boot?.nslabs ?? 0) << IOTLB.shift,
            slots: boot?.nslabs ?? 0, areas: boot?.nareas ?? 0, dynamic: setup.swiotlb.dynamic,
            force: setup.swiotlb.force || setup.swiotlb.confidential != nil, confidential: setup.swiotlb.confidential != nil,
            poolStart: boot?.start, dmapool: setup.dmapool.rawValue, devices: setup.devices, notes: setup.notes)
        result = replayer.result
    }

    public func json() throws -> String {
        let encoder = JSONEncoder()
        encoder.keyEncodingStrategy = .convertToSnakeCase
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        return String(decoding: try encoder.encode(self), as: UTF8.self) + "\n"
    }

    public var text: String {
        var out = "dmaemu-replay: \(recording.path)\n"
        let host = [recording.release.map { "Linux \($0)" }, recording.cpus.map { "\($0) CPUs" },
                    recording.memoryBytes.map { "\(gib($0)) GiB" }].compactMap { $0 }
        out += "recorded: \(host.isEmpty ? "a plain trace" : host.joined(separator: ", ")) (\(recording.kernel) formats); "
        out += "\(recording.lines) lines, \(recording.operations) operations over \(String(format: "%.3f", recording.seconds)) s\n"
        if !recording.notReplayed.isEmpty {
            out += "  not replayed: " + counts(recording.notReplayed) + "\n"
        }
        if recording.skippedLines > 0 {
            out += "  bad lines skipped: \(recording.skippedLines) (first: \(recording.firstSkipped ?? ""))\n"
        }
        if !recording.lost.isEmpty {
            out += "  lost by the ring before they were read: " + recording.lost.sorted { $0.key < $1.key }.map { "CPU \($0.key): \($0.value)" }.joined(separator: ", ") + " events\n"
        }
        if recording.reordered > 0 { out += "  \(recording.reordered) lines trace_pipe handed out late were replayed in time order\n" }
        let m = machine
        out += "machine: \(gib(m.ramBytes)) GiB RAM, \(m.cpus) CPUs, swiotlb \(mib(m.swiotlbBytes)) (\(m.slots) slots, \(m.areas) areas)"
        if let start = m.poolStart { out += " at 0x\(String(start, radix: 16))" }
        out += ", \(m.dynamic ? "dynamic" : "not dynamic"), \(m.confidential ? "confidential (forced)" : m.force ? "forced" : "not forced")"
        out += "; dmapool \(m.dmapool); Linux \(m.kernel)\n"
        for note in m.notes { out += "  \(note)\n" }
        out += "devices:\n"
        for device in m.devices {
            out += "  \(device.name)  \(device.driver ?? "-")  mask \(String(device.dmaMask, radix: 16)) (\(device.maskFrom)), "
            out += "coherent \(String(device.coherentMask, radix: 16)), min_align_mask \(String(device.minAlignMask, radix: 16)), "
            out += "boundary \(String(device.boundaryMask, radix: 16))\n"
        }
        let r = result
        var operations = r.operations
        operations[ReplayKind.bounced.name] = nil
        out += "replayed: \(r.replayed) operations (\(counts(operations)))\n"
        out += "bounces: \(r.bounces) here, \(r.recordedBounces) swiotlb_bounced lines in the recording\n"
        if let s = r.swiotlb {
            out += "swiotlb: \(s.slots) slots at the end, \(s.used) used, hiwater \(s.hiwater)"
            if let hiwater = recording.debugfs["io_tlb_used_hiwater"] { out += " (the host's debugfs: \(hiwater))" }
            out += "; pools added \(s.poolsAdded), transient pools \(s.transientPools)\n"
            out += "swiotlb buffer is full: \(s.full == 0 ? "never" : "\(s.full) times")\n"
            for event in r.full.prefix(100) { out += "  line \(event.line): \(event.message)\n" }
            if r.full.count > 100 { out += "  ... \(r.full.count - 100) more (--json lists them all)\n" }
        } else {
            out += "swiotlb: none (swiotlb=noforce)\n"
        }
        out += "unmatched unmaps, syncs and frees: \(r.unmatched); failed here only: \(r.failedHere); failed on the host: \(r.failedThere)"
        out += "; still mapped at the end: \(r.outstanding)\n"
        if r.rangeSyncs > 0 { out += "syncs of part of a mapping: \(r.rangeSyncs)\n" }
        if r.poolPages > 0 { out += "dma_alloc/dma_free lines of dma pool pages (the replayed pools make their own): \(r.poolPages)\n" }
        if r.unknownPoolLines > 0 {
            out += "dmapool lines of pools made before the recording with no size saved (tools/dmaemu-record saves it): \(r.unknownPoolLines)\n"
        }
        if r.truncatedLists > 0 { out += "dma_map_sg lines cut at 128 entries (only those replayed): \(r.truncatedLists)\n" }
        if !r.pools.isEmpty {
            out += "dma pools (pages, blocks column; at destroy or at the end):\n"
            let names = DMAPoolAlgorithm.allCases.map(\.rawValue)
            out += "  " + pad("device", 14) + pad("name", 20) + pad("size", 7) + pad("align", 7) + pad("boundary", 10) + pad("peak", 7)
                + names.map { pad($0, 16) }.joined() + "\n"
            for pool in r.pools {
                guard !pool.unknown else {
                    out += "  " + pad(pool.device, 14) + pad(pool.name, 20) + "made before the recording, size unknown: not replayed\n"
                    continue
                }
                out += "  " + pad(pool.device, 14) + pad(pool.name, 20) + pad("\(pool.size)", 7) + pad("\(pool.align)", 7)
                    + pad("\(pool.boundary)", 10) + pad("\(pool.peakActive)", 7)
                out += names.map { name in
                    if let use = pool.generations[name] { return pad("\(use.pages)p \(use.blocks)b", 16) }
                    return pad(pool.refused[name] == nil ? "-" : "refused", 16)
                }.joined() + "\n"
            }
        }
        return out
    }
}

func counts(_ values: [String: Int]) -> String {
    values.sorted { $0.value != $1.value ? $0.value > $1.value : $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ")
}

func gib(_ bytes: UInt64) -> String {
    bytes % (1 << 30) == 0 ? "\(bytes >> 30)" : String(format: "%.1f", Double(bytes) / Double(1 << 30))
}

func mib(_ bytes: Int) -> String {
    bytes >= 1 << 20 && bytes % (1 << 20) == 0 ? "\(bytes >> 20) MiB" : "\(bytes >> 10) KiB"
}

func pad(_ text: String, _ width: Int) -> String { text + String(repeating: " ", count: max(1, width - text.count)) }

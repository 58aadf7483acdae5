// A recording as the replay reads it: what the recorder saved about the machine (its
// header), and every DMA operation of the trace in order, each with the line it came
// from. Operations are fixed-size values; their arrays (a scatterlist's addresses) live
// in one arena, so that a million of them are a few flat allocations.
import Lib

/// What a line asked the DMA API to do.
public enum ReplayKind: UInt8, Sendable, CaseIterable {
    case mapPage, unmapPage, mapResource, unmapResource, mapSG, unmapSG
    case syncSingleForCPU, syncSingleForDevice, syncSGForCPU, syncSGForDevice
    case alloc, free, bounced
    case poolCreate, poolAlloc, poolFree, poolDestroy

    /// The name the report counts it under: the 6.12 event's.
    public var name: String {
        switch self {
        case .mapPage: "dma_map_page"
        case .unmapPage: "dma_unmap_page"
        case .mapResource: "dma_map_resource"
        case .unmapResource: "dma_unmap_resource"
        case .mapSG: "dma_map_sg"
        case .unmapSG: "dma_unmap_sg"
        case .syncSingleForCPU: "dma_sync_single_for_cpu"
        case .syncSingleForDevice: "dma_sync_single_for_device"
        case .syncSGForCPU: "dma_sync_sg_for_cpu"
        case .syncSGForDevice: "dma_sync_sg_for_device"
        case .alloc: "dma_alloc"
        case .free: "dma_free"
        case .bounced: "swiotlb_bounced"
        case .poolCreate: "dma_pool_create"
        case .poolAlloc: "dma_pool_alloc"
        case .poolFree: "dma_pool_free"
        case .poolDestroy: "dma_pool_destroy"
        }
    }
}

/// One operation. The fields mean, by kind:
/// - map: `address` phys, `dma` the recorded result (DMA_MAPPING_ERROR when it failed);
///   unmap and sync single: `address` the recorded dma address.
/// - map_sg: the arena holds `count` phys addresses, then `count2` dma addresses and
///   `count2` lengths; `extra` the full nents (more than `count` when truncated).
///   unmap_sg: `count` phys addresses; sync_sg: `count` dma addresses, then `count` lengths.
/// - alloc: `dma` the recorded address (0 when it failed), `extra` the gfp flags;
///   free: `address` the dma address.
/// - swiotlb_bounced: `address` the dma mask, `dma` the original's address, `extra` 1 if forced.
/// - dmapool: `pool` an index into Recording.pools; alloc and free: `address` the block's
///   vaddr, `dma` its dma address.
public struct ReplayOp: Sendable {
    public var kind: ReplayKind
    public var direction: UInt8 = 0
    public var device: UInt16 = 0
    public var cpu: UInt16 = 0
    public var pid: Int32 = 0
    public var line: Int32 = 0
    public var nanoseconds: UInt64 = 0
    public var flags: UInt64 = 0
    public var address: UInt64 = 0
    public var dma: UInt64 = 0
    public var size: UInt64 = 0
    public var attributes: UInt64 = 0
    public var extra: UInt64 = 0
    public var arrayStart: Int32 = 0
    public var count: Int32 = 0
    public var count2: Int32 = 0
    public var pool: Int32 = -1
    /// A dma_alloc the pool allocator made for a page of a dma pool (the next
    /// dma_pool_alloc of the task falls inside it), and the dma_free of such a page: the
    /// replayed pools make their own pages, so these are not issued.
    public var poolPage = false

    public init(kind: ReplayKind) { self.kind = kind }
}

/// A dma pool the recording uses: dma_pool_create's arguments, as passed; or, for a pool
/// made before the recording began (at probe, at boot), what the recorder's header saw in
/// its `pools` line: the block size and the blocks already out. `line` is 0 then, and the
/// size too when the header did not list the pool.
public struct RecordedPool: Sendable, Equatable {
    public var device: Int
    public var name: String
    public var size: Int
    public var align: Int
    public var boundary: Int
    public var line: Int
    public var heldAtStart = 0

    public var existedBefore: Bool { line == 0 }
}

/// What the recorder saved about the machine; every field may be missing in a plain trace.
public struct RecordingHeader: Sendable {
    /// uname -r of the host, and the kernel version whose formats the lines follow.
    public var release: String?
    public var machine: String?
    public var cpus: Int?
    public var memoryBytes: UInt64?
    public var commandLine: String?
    /// CONFIG_SWIOTLB_DYNAMIC, from the host's kernel config.
    public var dynamic: Bool?
    /// "software IO TLB: mapped [mem start-end] (NMB)" and "area num N."
    public var swiotlbStart: UInt64?
    public var swiotlbBytes: Int?
    public var swiotlbAreas: Int?
    /// The boot lines as saved, for the report.
    public var bootLines: [String] = []
    /// The devices the recorder described: name -> (driver, dma mask bits, coherent bits).
    public var devices: [String: RecordedDevice] = [:]
    /// The `pools` lines of the devices when recording began: device -> (name, active, size).
    public var pools: [String: [(name: String, active: Int, size: Int)]] = [:]
    /// debugfs swiotlb counters at the end of the recording (io_tlb_used_hiwater, ...).
    public var debugfs: [String: Int] = [:]
    /// What was recorded: the command, or the seconds.
    public var command: String?

    public init() {}
}

public struct RecordedDevice: Sendable, Equatable {
    public var driver: String?
    public var maskBits: Int?
    public var coherentMaskBits: Int?
}

public struct Recording: Sendable {
    public var header = RecordingHeader()
    public var ops: [ReplayOp] = []
    public var arena: [UInt64] = []
    /// Device names, by ReplayOp.device.
    public var devices: [String] = []
    public var pools: [RecordedPool] = []
    /// Each pid's comm, as the lines name them.
    public var tasks: [Int32: String] = [:]
    /// Lines of events this replay does not re-issue (other systems, dma_map_sg_err), by event.
    public var notReplayed: [String: Int] = [:]
    /// Lines --skip-bad left out, and the first of them.
    public var skippedLines = 0
    public var firstSkipped: RecordingError?
    /// "CPU:N [LOST M EVENTS]": what the ring lost before the reader got it, per CPU.
    public var lost: [Int: Int] = [:]
    /// Lines trace_pipe handed out after a later event of another CPU, replayed in time order.
    public var reordered = 0
    /// The highest CPU a line names, plus one; "#P:" of a trace header.
    public var cpusSeen = 0
    public var headerCPUs: Int?
    /// The highest physical address any line names (RAM must reach it).
    public var highestAddress: UInt64 = 0
    public var lines = 0

    public init() {}

    /// The kernel the lines are from: the header's release if it names one we emulate,
    /// else 6.18 if its names appear, else 6.12 (the first with dma events).
    public var kernel: KernelVersion {
        if let release = header.release {
            let parts = release.split(separator: ".")
            if parts.count >= 2, let major = Int(parts[0]), let minor = Int(parts[1].prefix { $0.isNumber }) {
                if major < 6 || (major == 6 && minor < 12) { return .v6_1 }
                if major == 6 && minor < 18 { return .v6_12 }
                return .v6_18
            }
        }
        return sawPhysEvents ? .v6_18 : .v6_12
    }

    /// dma_map_phys or dma_unmap_phys appeared (6.18's names).
    public var sawPhysEvents = false

    /// The span the recorded events cover, in seconds.
    public var seconds: Double {
        guard let first = ops.first, let last = ops.last else { return 0 }
        return Double(last.nanoseconds &- first.nanoseconds) / 1e9
    }
}

/// A line the replay cannot read: its number (1-based), and why.
public struct RecordingError: Error, Sendable, Equatable, CustomStringConvertible {
    public let line: Int
    public let reason: String

    public init(line: Int, _ reason: String) {
        self.line = line
        self.reason = reason
    }

    public var description: String { "line \(line): \(reason)" }
}

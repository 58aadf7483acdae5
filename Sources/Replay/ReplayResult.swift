// What a replay found, as its report prints it and as --json writes it.

/// A map that found no slots: the line of the recording, and what the kernel's
/// "swiotlb buffer is full (sz: %zd bytes), total %lu (slots), used %lu (slots)" says.
public struct FullEvent: Codable, Sendable, Equatable {
    public var line: Int
    public var device: String
    public var size: Int
    public var total: Int
    public var used: Int

    public var message: String { "\(device): swiotlb buffer is full (sz: \(size) bytes), total \(total) (slots), used \(used) (slots)" }
}

public struct SWIOTLBUse: Codable, Sendable, Equatable {
    /// io_tlb_nslabs at the end (the boot pool and every pool added).
    public var slots: Int
    public var used: Int
    public var hiwater: Int
    public var poolsAdded: Int
    public var transientPools: Int
    /// Maps that found no room (each a "swiotlb buffer is full").
    public var full: Int
}

/// A pool's pages and its `pools` blocks column under one generation.
public struct PoolUse: Codable, Sendable, Equatable {
    public var pages: Int
    public var blocks: Int
}

public struct PoolResult: Codable, Sendable, Equatable {
    public var device: String
    public var name: String
    public var size: Int
    public var align: Int
    public var boundary: Int
    /// The most blocks the pool had out at once.
    public var peakActive = 0
    /// By generation (stack, rbtree, legacy): at its destroy, or at the end.
    public var generations: [String: PoolUse] = [:]
    /// Generations whose dma_pool_create refused the arguments, and why.
    public var refused: [String: String] = [:]
    /// Made before the recording began and listed by no header: its block size is unknown,
    /// so its lines are not replayed.
    public var unknown = false
    /// Made before the recording began: the blocks its `pools` line showed out then.
    public var heldAtStart = 0
}

public struct ReplayResult: Codable, Sendable, Equatable {
    /// Operations re-issued, by kind (swiotlb_bounced lines are counted, not issued).
    public var operations: [String: Int] = [:]
    /// Maps here that bounced, and swiotlb_bounced lines in the recording.
    public var bounces = 0
    public var recordedBounces = 0
    public var swiotlb: SWIOTLBUse?
    public var full: [FullEvent] = []
    public var pools: [PoolResult] = []
    /// An unmap, sync or free of an address no earlier line mapped (lost events, or
    /// mapped before the recording began).
    public var unmatched = 0
    /// Maps and allocations that failed here but not on the host (their unmaps are skipped),
    /// and ones that failed on the host (undone here at once when they succeeded).
    public var failedHere = 0
    public var failedThere = 0
    /// Syncs of part of a mapping, found by range.
    public var rangeSyncs = 0
    /// dma_map_sg lines with more entries than the event records (128): only those are replayed.
    public var truncatedLists = 0
    /// dma_alloc and dma_free lines of dma pools' pages: the replayed pools make their own.
    public var poolPages = 0
    /// Lines of pools whose size is unknown (made before the recording, with no header line).
    public var unknownPoolLines = 0
    /// Mappings, lists and coherent blocks still out when the recording ended.
    public var outstanding = 0

    public var replayed: Int { operations.values.reduce(0, +) - (operations[ReplayKind.bounced.name] ?? 0) }
}

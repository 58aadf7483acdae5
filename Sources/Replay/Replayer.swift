// Re-issues a recording's DMA operations, in order, on a machine of the settled setup:
// each on the CPU its line names (so swiotlb picks that CPU's area, as the host did),
// as its task and at its time when the replay is traced. The recording's addresses are
// the host's: a map's result is kept beside the address the host got, so that the
// unmap, the syncs and the free that name the host's address reach this machine's.
// Pools the worker adds are in place before the next operation (the replay has no
// clock of its own to race them against).
import DMA
import DMAPool
import Lib
import PhysicalMemory
import SWIOTLB
import Trace

public enum ReplayError: Error, CustomStringConvertible {
    case tooMuchRAM(UInt64)

    public var description: String {
        switch self {
        case .tooMuchRAM(let bytes):
            "the recording's addresses need \(bytes >> 30) GiB of RAM, more than the \(Replayer.maxRAM >> 30) GiB a replay emulates"
        }
    }
}

/// A device's address: the key of the mappings the recording names.
struct MapKey: Hashable {
    let device: UInt16
    let address: UInt64
}

public final class Replayer {
    let recording: Recording
    public let setup: ReplaySetup
    public let ram: PhysicalMemory
    public let swiotlb: IOTLBMem?
    public let devices: [Device]
    public let tracer: Tracer?
    /// Where the replay's own trace goes, a chunk of lines at a time.
    private let traceSink: ((String) -> Void)?

    private var singles: [MapKey: Single] = [:]
    private var coherent: [MapKey: Coherent] = [:]
    private var sgByPhys: [MapKey: Int] = [:]
    private var sgByDMA: [MapKey: Int] = [:]
    private var scatterLists: [ScatterList?] = []
    private var freeLists: [Int] = []
    /// Mappings under a key that another live mapping already holds (the same page mapped twice).
    private var shadowed: [MapKey: [Single]] = [:]
    /// Recorded addresses whose map succeeded there and failed here: their unmaps are not issued.
    private var failedHere: Set<MapKey> = []
    private var pools: [PoolReplay?] = []
    private let shadowDevices: [DMAPoolAlgorithm: Device]

    public private(set) var result = ReplayResult()
    private var counts = [Int](repeating: 0, count: ReplayKind.allCases.count)

    struct Single {
        var dma: DMAAddr
        var size: Int
    }

    struct Coherent {
        var cpu: UnsafeMutableRawPointer
        var dma: DMAAddr
        var size: Int
    }

    struct ScatterList {
        var device: UInt16
        var entries: [ScatterEntry]
        var physKey: MapKey
        var dmaKey: MapKey
    }

    /// The most RAM a replay emulates: the page frames of more would not fit this machine.
    public static let maxRAM: UInt64 = 1 << 40

    public init(_ recording: Recording, setup: ReplaySetup, trace: ((String) -> Void)? = nil) throws {
        self.recording = recording
        self.setup = setup
        traceSink = trace
        guard setup.ramBytes <= Self.maxRAM else { throw ReplayError.tooMuchRAM(setup.ramBytes) }
        let ram = try PhysicalMemory(size: setup.ramBytes)
        self.ram = ram
        let swiotlb = IOTLBMem(ram: ram, config: setup.swiotlb, cpus: setup.cpus)
        self.swiotlb = swiotlb
        let tracer = trace == nil ? nil : Tracer(kernel: setup.kernel, cpus: setup.cpus)
        if let tracer {
            tracer.enable(tracer.events, true)
            for (pid, comm) in recording.tasks { Tracer.nameTask(pid, comm) }
        }
        self.tracer = tracer
        devices = setup.devices.map { spec in
            let pci = spec.boundaryMask == 0xffff_ffff
            let device = Device(
                name: spec.name, ram: ram, bus: pci ? "pci" : "platform", swiotlb: swiotlb, dmaMask: spec.dmaMask,
                coherentDMAMask: spec.coherentMask, minAlignMask: spec.minAlignMask, segmentBoundaryMask: spec.boundaryMask,
                tracer: tracer)
            device.driverName = spec.driver
            return device
        }
        // The other two generations' pools live on a machine of their own each, so that
        // their pages do not move this machine's allocations.
        var shadows: [DMAPoolAlgorithm: Device] = [:]
        for algorithm in DMAPoolAlgorithm.allCases where algorithm != setup.dmapool {
            shadows[algorithm] = Device(
                name: "shadow", ram: try PhysicalMemory(size: min(setup.ramBytes, 16 << 30)), dmaMask: .max, coherentDMAMask: .max)
        }
        shadowDevices = shadows
        pools = [PoolReplay?](repeating: nil, count: recording.pools.count)
        result.pools = recording.pools.map { pool in
            PoolResult(
                device: recording.devices[pool.device], name: pool.name, size: pool.size, align: pool.align, boundary: pool.boundary,
                heldAtStart: pool.heldAtStart)
        }
    }

    /// Pools the recording never destroyed hold their devices, as dev->dma_pools does:
    /// their blocks go back and they are destroyed, so that the machine goes with the replayer.
    deinit {
        for replay in pools.compactMap({ $0 }) {
            for blocks in replay.blocks.values {
                for (algorithm, pool) in replay.pools {
                    if let block = blocks[algorithm] { pool.free(block.cpu, dma: block.dma) }
                }
            }
            for pool in replay.pools.values { pool.destroy() }
        }
    }

    /// Runs every operation; the result is also left in `result`.
    @discardableResult
    public func run() -> ReplayResult {
        let startFull = swiotlb?.fullMaps.count ?? 0
        for index in recording.ops.indices {
            let op = recording.ops[index]
            if let tracer {
                var context = Tracer.Context(pid: op.pid, nanoseconds: op.nanoseconds, flags: op.flags)
                withUnsafePointer(to: &context) { context in
                    Tracer.replaying(as: context) { CPU.acting(as: Int(op.cpu)) { execute(op) } }
                }
                if index & 4095 == 4095 { drainTrace(tracer) }
            } else {
                CPU.acting(as: Int(op.cpu)) { execute(op) }
            }
        }
        if let tracer { drainTrace(tracer) }
        finish(startFull: startFull)
        return result
    }

    private func drainTrace(_ tracer: Tracer) {
        let entries = tracer.entries(consume: true)
        if !entries.isEmpty { traceSink?(tracer.text(entries)) }
    }

    // MARK: - One operation

    private func execute(_ op: ReplayOp) {
        let device = devices[Int(op.device)]
        let direction = DMADirection(rawValue: Int(op.direction)) ?? .bidirectional
        let attributes = DMAAttributes(rawValue: Int(truncatingIfNeeded: op.attributes))
        // A map or an alloc is known by the address it returned; the rest name that address.
        let returns = op.kind == .mapPage || op.kind == .mapResource || op.kind == .alloc
        let key = MapKey(device: op.device, address: returns ? op.dma : op.address)
        counts[Int(op.kind.rawValue)] += 1
        switch op.kind {
        case .mapPage, .mapResource:
            map(op, device, direction, attributes, key)
        case .unmapPage, .unmapResource:
            guard let single = takeSingle(key) else {
                if failedHere.remove(key) == nil { result.unmatched += 1 }
                return
            }
            if op.kind == .unmapPage {
                device.unmapSingle(single.dma, size: Int(op.size), direction, attributes: attributes)
            } else {
                device.unmapResource(single.dma, size: Int(op.size), direction, attributes: attributes)
            }
        case .syncSingleForCPU, .syncSingleForDevice:
            guard let dma = translate(key) else {
                result.unmatched += 1
                return
            }
            if op.kind == .syncSingleForCPU {
                device.syncSingleForCPU(dma, size: Int(op.size), direction)
            } else {
                device.syncSingleForDevice(dma, size: Int(op.size), direction)
            }
        case .mapSG:
            mapSG(op, device, direction, attributes)
        case .unmapSG:
            let physKey = MapKey(device: op.device, address: recording.arena[Int(op.arrayStart)])
            guard let index = sgByPhys[physKey], let list = scatterLists[index] else {
                if failedHere.remove(physKey) == nil { result.unmatched += 1 }
                return
            }
            var entries = list.entries
            entries.withUnsafeMutableBufferPointer { device.unmapSG($0, direction, attributes: attributes) }
            sgByPhys[physKey] = nil
            sgByDMA[list.dmaKey] = nil
            scatterLists[index] = nil
            freeLists.append(index)
        case .syncSGForCPU, .syncSGForDevice:
            let dmaKey = MapKey(device: op.device, address: recording.arena[Int(op.arrayStart)])
            guard let index = sgByDMA[dmaKey], var entries = scatterLists[index]?.entries else {
                result.unmatched += 1
                return
            }
            // The sync may cover fewer entries than were mapped (nelems), never more.
            let count = min(Int(op.count), entries.count)
            entries.withUnsafeMutableBufferPointer { list in
                device.syncSG(UnsafeMutableBufferPointer(rebasing: list[..<count]), direction, forDevice: op.kind == .syncSGForDevice)
            }
        case .alloc where op.poolPage, .free where op.poolPage:
            result.poolPages += 1
        case .alloc:
            let block = device.allocCoherent(size: Int(op.size), gfp: GFP(rawValue: UInt32(truncatingIfNeeded: op.extra)))
            if op.dma == 0 {  // it failed there: nothing will free it
                result.failedThere += 1
                if let block { device.freeCoherent(size: Int(op.size), cpu: block.cpu, dma: block.dma) }
            } else if let block {
                coherent[key] = Coherent(cpu: block.cpu, dma: block.dma, size: Int(op.size))
            } else {
                result.failedHere += 1
                failedHere.insert(key)
            }
        case .free:
            guard let block = coherent.removeValue(forKey: key) else {
                if failedHere.remove(key) == nil { result.unmatched += 1 }
                return
            }
            device.freeCoherent(size: block.size, cpu: block.cpu, dma: block.dma)
        case .bounced:
            result.recordedBounces += 1
        case .poolCreate, .poolAlloc, .poolFree, .poolDestroy:
            poolOp(op, device)
        }
    }

    private func map(_ op: ReplayOp, _ device: Device, _ direction: DMADirection, _ attributes: DMAAttributes, _ key: MapKey) {
        let before = swiotlb?.fullMaps.count ?? 0
        let size = Int(op.size)
        if op.kind == .mapPage && device.wouldBounce(op.address, size: size) { result.bounces += 1 }
        let dma = op.kind == .mapPage
            ? device.mapSingle(op.address, size: size, direction, attributes: attributes)
            : device.mapResource(op.address, size: size, direction, attributes: attributes)
        noteFull(op, before: before)
        if op.dma == dmaMappingError {
            result.failedThere += 1
            if let dma { device.unmapSingle(dma, size: size, direction, attributes: attributes.union(.skipCPUSync)) }
        } else if let dma {
            putSingle(key, Single(dma: dma, size: size))
        } else {
            result.failedHere += 1
            failedHere.insert(key)
        }
    }

    private func mapSG(_ op: ReplayOp, _ device: Device, _ direction: DMADirection, _ attributes: DMAAttributes) {
        let start = Int(op.arrayStart), count = Int(op.count), mapped = Int(op.count2)
        if op.extra > UInt64(count) { result.truncatedLists += 1 }
        var entries = (0..<count).map { i in
            // dma-direct maps each entry as it is: its dma length is its length.
            ScatterEntry(phys: recording.arena[start + i], length: Int(i < mapped ? recording.arena[start + count + mapped + i] : 4096))
        }
        for entry in entries where device.wouldBounce(entry.phys, size: entry.length) { result.bounces += 1 }
        let before = swiotlb?.fullMaps.count ?? 0
        let ok = entries.withUnsafeMutableBufferPointer { device.mapSG($0, direction, attributes: attributes) } > 0
        noteFull(op, before: before)
        let physKey = MapKey(device: op.device, address: recording.arena[start])
        guard ok else {
            result.failedHere += 1
            failedHere.insert(physKey)
            return
        }
        let dmaKey = MapKey(device: op.device, address: mapped > 0 ? recording.arena[start + count] : entries[0].dmaAddress)
        let list = ScatterList(device: op.device, entries: entries, physKey: physKey, dmaKey: dmaKey)
        let index: Int
        if let free = freeLists.popLast() {
            index = free
            scatterLists[index] = list
        } else {
            index = scatterLists.count
            scatterLists.append(list)
        }
        sgByPhys[physKey] = index
        sgByDMA[dmaKey] = index
    }

    /// A "swiotlb buffer is full" during `op`: its line and the kernel's numbers.
    private func noteFull(_ op: ReplayOp, before: Int) {
        guard let swiotlb else { return }
        if swiotlb.canGrow { swiotlb.waitForGrowth() }
        let (count, size) = swiotlb.fullMaps
        guard count > before else { return }
        result.full.append(FullEvent(
            line: Int(op.line), device: recording.devices[Int(op.device)], size: size, total: swiotlb.nslabs, used: swiotlb.used))
    }

    // MARK: - Mappings by the host's address

    private func putSingle(_ key: MapKey, _ single: Single) {
        if let existing = singles.updateValue(single, forKey: key) { shadowed[key, default: []].append(existing) }
    }

    private func takeSingle(_ key: MapKey) -> Single? {
        guard let single = singles.removeValue(forKey: key) else { return nil }
        if var others = shadowed[key], !others.isEmpty {
            singles[key] = others.removeFirst()
            shadowed[key] = others.isEmpty ? nil : others
        }
        return single
    }

    /// This machine's address for a recorded one: the mapping's own, or (a sync of part of
    /// a mapping, dma_sync_single_range_*) the mapping that holds it.
    private func translate(_ key: MapKey) -> DMAAddr? {
        if let single = singles[key] { return single.dma }
        for (other, single) in singles where other.device == key.device && key.address >= other.address
            && key.address < other.address + UInt64(single.size)
        {
            result.rangeSyncs += 1
            return single.dma + (key.address - other.address)
        }
        return nil
    }

    // MARK: - dma pools

    /// A recorded pool under each generation: this machine's (the setup's generation)
    /// and the other two on their shadow machines, each block held in all three.
    final class PoolReplay {
        var pools: [DMAPoolAlgorithm: DMAPool] = [:]
        var blocks: [UInt64: PoolBlocks] = [:]
    }

    /// A block in each generation, without a dictionary of its own.
    struct PoolBlocks {
        typealias Block = (cpu: UnsafeMutableRawPointer, dma: DMAAddr)
        var stack: Block?, rbtree: Block?, legacy: Block?

        subscript(_ algorithm: DMAPoolAlgorithm) -> Block? {
            get {
                switch algorithm {
                case .stack: stack
                case .rbtree: rbtree
                case .legacy: legacy
                }
            }
            set {
                switch algorithm {
                case .stack: stack = newValue
                case .rbtree: rbtree = newValue
                case .legacy: legacy = newValue
                }
            }
        }
    }

    /// A pool made before the recording began, made here on its first line: with the size
    /// its `pools` line showed and the blocks it had out then (held for good); one whose
    /// size nobody saved is not replayed.
    private func poolOp(_ op: ReplayOp, _ device: Device) {
        let index = Int(op.pool)
        let recorded = recording.pools[index]
        if recorded.existedBefore && pools[index] == nil && !result.pools[index].unknown {
            guard recorded.size > 0 else {
                result.pools[index].unknown = true
                result.unknownPoolLines += 1
                return
            }
            create(index, device)
            if let replay = pools[index] {
                for pool in replay.pools.values { for _ in 0..<recorded.heldAtStart { _ = pool.alloc() } }
            }
        }
        if result.pools[index].unknown {
            result.unknownPoolLines += 1
            return
        }
        switch op.kind {
        case .poolCreate:
            create(index, device)
        case .poolAlloc:
            guard let replay = pools[index] else { return }
            var blocks = PoolBlocks()
            for (algorithm, pool) in replay.pools { blocks[algorithm] = pool.alloc() }
            replay.blocks[op.address] = blocks
            let active = replay.pools[setup.dmapool]?.counters.active ?? replay.blocks.count
            result.pools[index].peakActive = max(result.pools[index].peakActive, active)
        case .poolFree:
            guard let replay = pools[index], let blocks = replay.blocks.removeValue(forKey: op.address) else {
                result.unmatched += 1
                return
            }
            for (algorithm, pool) in replay.pools {
                if let block = blocks[algorithm] { pool.free(block.cpu, dma: block.dma) }
            }
        case .poolDestroy:
            guard let replay = pools[index] else { return }
            capture(index, replay)
            for pool in replay.pools.values { pool.destroy() }
            pools[index] = nil
        default:
            break
        }
    }

    private func create(_ index: Int, _ device: Device) {
        let recorded = recording.pools[index]
        let replay = PoolReplay()
        for algorithm in DMAPoolAlgorithm.allCases {
            let owner = algorithm == setup.dmapool ? device : shadowDevices[algorithm]!
            do {
                replay.pools[algorithm] = try DMAPool(
                    name: recorded.name, device: owner, size: recorded.size, align: recorded.align, boundary: recorded.boundary,
                    algorithm: algorithm)
            } catch {
                result.pools[index].refused[algorithm.rawValue] = "\(error)"
            }
        }
        pools[index] = replay
    }

    private func capture(_ index: Int, _ replay: PoolReplay) {
        for (algorithm, pool) in replay.pools {
            let counters = pool.counters
            result.pools[index].generations[algorithm.rawValue] = PoolUse(pages: counters.pages, blocks: counters.blocks)
        }
    }

    private func finish(startFull: Int) {
        for kind in ReplayKind.allCases where counts[Int(kind.rawValue)] > 0 { result.operations[kind.name] = counts[Int(kind.rawValue)] }
        for (index, replay) in pools.enumerated() { if let replay { capture(index, replay) } }
        result.outstanding = singles.count + shadowed.values.reduce(0) { $0 + $1.count } + sgByPhys.count + coherent.count
        if let swiotlb {
            result.swiotlb = SWIOTLBUse(
                slots: swiotlb.nslabs, used: swiotlb.used, hiwater: swiotlb.usedHiwater, poolsAdded: swiotlb.pools.count - 1,
                transientPools: swiotlb.transientPoolsMade, full: swiotlb.fullMaps.count - startFull)
        }
    }
}

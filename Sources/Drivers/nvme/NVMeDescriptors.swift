// What nvme-pci writes for one read or write (nvme_setup_rw(), nvme_pci_setup_prps() and
// nvme_pci_setup_sgls() before the 6.16 rework): a 64-byte submission queue entry, and
// either PRPs or an SGL in descriptors from the two pools, at most 5 per request.
//
// PRPs: PRP1 is the first segment's dma address (any offset). If the rest fits one page,
// PRP2 points at it; otherwise PRP2 points at a list of page addresses: from the small
// pool when it has at most 32 entries (256 bytes), from the page pool otherwise. A full
// page list (512 entries) with more to come moves its last entry to a new list and points
// its last slot at that list.
// SGLs (when the average segment reaches sgl_threshold): one segment is a data block
// descriptor in the command; more are a list of 16-byte data block descriptors (small pool
// for at most 16, page pool otherwise) the command's last-segment descriptor points at.
import Block
import DMA
import Hardware

/// The pool descriptors come from.
enum NVMePool { case small, page }

enum NVMeDescriptors {
    /// The small pool's blocks: 32 PRP entries or 16 SGL descriptors.
    static let smallPoolSize = 256
    /// NVME_MAX_NR_DESCRIPTORS: the lists one request may chain.
    static let maxDescriptors = 5

    static func buildCommand(_ sqe: UnsafeMutableRawPointer, _ command: BlockCommand, id: Int) {
        sqe.initializeMemory(as: UInt8.self, repeating: 0, count: NVMeCommand.size)
        sqe.storeBytes(of: command.write ? NVMeCommand.write : NVMeCommand.read, as: UInt8.self)
        sqe.storeBytes(of: UInt16(id).littleEndian, toByteOffset: NVMeCommand.commandID, as: UInt16.self)
        sqe.storeBytes(of: UInt32(1).littleEndian, toByteOffset: NVMeCommand.nsid, as: UInt32.self)
        sqe.storeBytes(of: UInt64(command.lba).littleEndian, toByteOffset: NVMeCommand.slba, as: UInt64.self)
        sqe.storeBytes(of: UInt16(command.sectors - 1).littleEndian, toByteOffset: NVMeCommand.length, as: UInt16.self)
    }

    /// nvme_pci_use_sgls(): the average segment reaches the threshold (0: never).
    static func useSGLs(_ list: UnsafeMutableBufferPointer<ScatterEntry>, bytes: Int, threshold: Int) -> Bool {
        threshold > 0 && (bytes + list.count - 1) / list.count >= threshold
    }

    /// The PRPs for `list` into `sqe`; descriptors taken are appended to `taken` (from
    /// `pool`). False when a pool is empty or the list breaks the PRP rules; what was
    /// taken is still in `taken` for the caller to free.
    static func setupPRPs(
        _ sqe: UnsafeMutableRawPointer, _ list: UnsafeMutableBufferPointer<ScatterEntry>, bytes: Int,
        taken: inout Descriptors, alloc: (NVMePool) -> HeldBlock?
    ) -> Bool {
        let page = NVMeCommand.pageSize
        var s = 0
        var dmaAddress = list[0].dmaAddress
        var dmaLength = list[0].dmaLength
        let offset = Int(dmaAddress & UInt64(page - 1))
        var length = bytes - (page - offset)
        var prp2: UInt64 = 0
        defer {
            sqe.storeBytes(of: list[0].dmaAddress.littleEndian, toByteOffset: NVMeCommand.prp1, as: UInt64.self)
            sqe.storeBytes(of: prp2.littleEndian, toByteOffset: NVMeCommand.prp2, as: UInt64.self)
        }
        guard length > 0 else { return true }
        dmaLength -= page - offset
        if dmaLength != 0 {
            dmaAddress += UInt64(page - offset)
        } else {
            s += 1
            dmaAddress = list[s].dmaAddress
            dmaLength = list[s].dmaLength
        }
        if length <= page {
            prp2 = dmaAddress
            return true
        }
        let entries = (length + page - 1) / page
        let pool: NVMePool = entries <= smallPoolSize / 8 ? .small : .page
        guard var current = alloc(pool) else { return false }
        taken.append(current, pool)
        prp2 = current.dma
        var i = 0
        while true {
            if i == page / 8 {
                guard taken.count < maxDescriptors, let next = alloc(pool) else { return false }
                taken.append(next, pool)
                let moved = current.cpu.load(fromByteOffset: (i - 1) * 8, as: UInt64.self)
                next.cpu.storeBytes(of: moved, as: UInt64.self)
                current.cpu.storeBytes(of: next.dma.littleEndian, toByteOffset: (i - 1) * 8, as: UInt64.self)
                current = next
                i = 1
            }
            current.cpu.storeBytes(of: dmaAddress.littleEndian, toByteOffset: i * 8, as: UInt64.self)
            i += 1
            dmaLength -= page
            dmaAddress += UInt64(page)
            length -= page
            if length <= 0 { return true }
            if dmaLength > 0 { continue }
            // A segment that ends inside a page cannot be described by PRPs.
            guard dmaLength == 0, s + 1 < list.count else { return false }
            s += 1
            dmaAddress = list[s].dmaAddress
            dmaLength = list[s].dmaLength
        }
    }

    /// An SGL for `list` into `sqe` (the 6.3+ driver: one list, no chaining).
    static func setupSGLs(
        _ sqe: UnsafeMutableRawPointer, _ list: UnsafeMutableBufferPointer<ScatterEntry>,
        taken: inout Descriptors, alloc: (NVMePool) -> HeldBlock?
    ) -> Bool {
        sqe.storeBytes(of: NVMeCommand.sglFlag, toByteOffset: NVMeCommand.flags, as: UInt8.self)
        let dptr = sqe + NVMeCommand.prp1
        if list.count == 1 {
            descriptor(dptr, address: list[0].dmaAddress, length: list[0].dmaLength, type: NVMeCommand.dataBlock)
            return true
        }
        guard list.count <= NVMeCommand.pageSize / 16 else { return false }
        let pool: NVMePool = list.count <= smallPoolSize / 16 ? .small : .page
        guard let block = alloc(pool) else { return false }
        taken.append(block, pool)
        descriptor(dptr, address: block.dma, length: list.count * 16, type: NVMeCommand.lastSegment)
        for (i, entry) in list.enumerated() {
            descriptor(block.cpu + i * 16, address: entry.dmaAddress, length: entry.dmaLength, type: NVMeCommand.dataBlock)
        }
        return true
    }

    @inline(__always)
    static func descriptor(_ at: UnsafeMutableRawPointer, address: UInt64, length: Int, type: UInt8) {
        at.storeBytes(of: address.littleEndian, as: UInt64.self)
        at.storeBytes(of: UInt32(length).littleEndian, toByteOffset: 8, as: UInt32.self)
        at.storeBytes(of: UInt32(0), toByteOffset: 12, as: UInt32.self)
        at.storeBytes(of: type, toByteOffset: 15, as: UInt8.self)
    }
}

/// A request's descriptors (iod->descriptors[]), at most 5, kept without the heap.
struct Descriptors {
    private(set) var count = 0
    private var blocks: (HeldBlock, HeldBlock, HeldBlock, HeldBlock, HeldBlock)
    private var pools: (NVMePool, NVMePool, NVMePool, NVMePool, NVMePool) = (.small, .small, .small, .small, .small)

    init() {
        let none = HeldBlock(cpu: UnsafeMutableRawPointer(bitPattern: 1)!, dma: 0)
        blocks = (none, none, none, none, none)
    }

    mutating func append(_ block: HeldBlock, _ pool: NVMePool) {
        withUnsafeMutableBytes(of: &blocks) { $0.storeBytes(of: block, toByteOffset: count * MemoryLayout<HeldBlock>.stride, as: HeldBlock.self) }
        withUnsafeMutableBytes(of: &pools) { $0.storeBytes(of: pool, toByteOffset: count * MemoryLayout<NVMePool>.stride, as: NVMePool.self) }
        count += 1
    }

    subscript(i: Int) -> (block: HeldBlock, pool: NVMePool) {
        let block = withUnsafeBytes(of: blocks) { $0.load(fromByteOffset: i * MemoryLayout<HeldBlock>.stride, as: HeldBlock.self) }
        let pool = withUnsafeBytes(of: pools) { $0.load(fromByteOffset: i * MemoryLayout<NVMePool>.stride, as: NVMePool.self) }
        return (block, pool)
    }
}

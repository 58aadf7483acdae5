// The host's ends of the HBA's reply queues (struct adapter_reply_queue and the reply free
// queue, mpt3sas_base.c): probe fills each reply post queue with all ones (unused) and the
// free queue with every reply frame's address; after the IOC runs a request the driver
// walks the request's queue from its host index as _base_process_reply_queue() does: a
// SCSI IO Success descriptor completes its SMID, an Address Reply's frame gives the IOC
// status and goes back to the free queue; each entry is set back to all ones, and the
// host indexes are written to the IOC. The request's queue is the CPU's MSI-X vector
// (cpu_msix_table, as _base_assign_reply_queues()'s grouping of CPUs over the queues
// makes it); its interrupt is taken where MPT3SASVector says.
import DMA
import Hardware
import Lib
import Locking
import SystemPackage

final class MPT3SASReplyQueue: @unchecked Sendable {  // `state` guards the queues' memory
    let posts: [UnsafeSendable<UnsafeMutableRawPointer>]
    let postDepth: Int
    let free: UnsafeMutableRawPointer
    let freeDepth: Int
    /// The reply pool: frame i at frames + i * frameSize, dma framesDMA + i * frameSize.
    let frames: UnsafeMutableRawPointer
    let framesDMA: DMAAddr
    let frameSize: Int
    let ioc: MPT3SASReplyQueues
    /// cpu_msix_table.
    let cpuMSIx: [Int]
    let smidCount: Int
    private struct State {
        var hostIndex: [Int]
        var freeHostIndex: Int
    }
    private let state: SpinLock<State>

    init(posts: [UnsafeMutableRawPointer], postDepth: Int, free: UnsafeMutableRawPointer, freeDepth: Int,
         frames: UnsafeMutableRawPointer, framesDMA: DMAAddr, frameSize: Int, smids: Int, cpus: Int, ioc: MPT3SASReplyQueues) {
        self.posts = posts.map { UnsafeSendable($0) }
        self.postDepth = postDepth
        self.free = free
        self.freeDepth = freeDepth
        self.frames = frames
        self.framesDMA = framesDMA
        self.frameSize = frameSize
        self.ioc = ioc
        smidCount = smids
        cpuMSIx = Self.assign(cpus: cpus, queues: posts.count)
        for post in posts { post.initializeMemory(as: UInt8.self, repeating: 0xff, count: postDepth * MPT3SASReply.descriptorSize) }
        for i in 0..<freeDepth {
            free.storeBytes(of: UInt32(truncatingIfNeeded: framesDMA + DMAAddr(i * frameSize)).littleEndian, toByteOffset: i * 4, as: UInt32.self)
        }
        state = SpinLock(State(hostIndex: posts.map { _ in 0 }, freeHostIndex: freeDepth - 1))
    }

    /// _base_assign_reply_queues()'s fall-back: nr_cpus / nr_msix CPUs to each queue in
    /// order, one more to the first nr_cpus % nr_msix, until the CPUs run out. (With
    /// smp_affinity_enable the IRQ affinity decides; for as many queues as CPUs, or more,
    /// it gives each CPU its own queue too.)
    static func assign(cpus: Int, queues: Int) -> [Int] {
        var table = [Int](repeating: 0, count: cpus)
        var cpu = 0
        for queue in 0..<queues where cpu < cpus {
            let group = cpus / queues + (queue < cpus % queues ? 1 : 0)
            for _ in 0..<group where cpu < cpus {
                table[cpu] = queue
                cpu += 1
            }
        }
        return table
    }

    /// _base_get_msix_index(): the calling CPU's queue.
    var msixIndex: Int { cpuMSIx[CPU.current % cpuMSIx.count] }

    /// The host index of each queue (for tests).
    var hostIndexes: [Int] { state.withLock { $0.hostIndex } }

    /// _base_process_reply_queue() on queue `msix`: `complete` gets each descriptor's SMID
    /// and IOC status, outside the queues' lock (a completion unmaps, and may copy bounce
    /// buffers back). Returns how many descriptors it took.
    @discardableResult
    func process(_ msix: Int, _ complete: (_ smid: Int, _ status: UInt16) -> Void) -> Int {
        var found = 0
        var returned = false
        while let (smid, status, freed) = next(msix) {
            found += 1
            returned = returned || freed
            if smid > 0, smid <= smidCount { complete(smid, status) }
        }
        let (host, freeHost) = state.withLock { ($0.hostIndex[msix], $0.freeHostIndex) }
        if returned { ioc.ringFreeHost(freeHost) }
        if found > 0 { ioc.ringPostHost(msix, host) }
        return found
    }

    /// The descriptor at queue `msix`'s host index, set back to all ones and passed: its
    /// SMID, IOC status, and whether it gave a reply frame back to the free queue.
    private func next(_ msix: Int) -> (smid: Int, status: UInt16, freed: Bool)? {
        let post = posts[msix].value
        return state.withLock { s -> (Int, UInt16, Bool)? in
            let entry = post + s.hostIndex[msix] * MPT3SASReply.descriptorSize
            let words = UInt64(littleEndian: entry.load(as: UInt64.self))
            let type = UInt8(truncatingIfNeeded: words) & MPT3SASReply.typeMask
            guard type != MPT3SASReply.unused, UInt32(truncatingIfNeeded: words) != .max, UInt32(words >> 32) != .max else { return nil }
            let smid = Int(UInt16(truncatingIfNeeded: words >> 16))
            var status = MPT3SASReply.IOCStatus.success.rawValue
            var freed = false
            if type == MPT3SASReply.addressReply {
                // 32 bits, as reply_dma_min/max_address and the frames' 4 GiB region.
                let reply = UInt32(words >> 32), first = UInt32(truncatingIfNeeded: framesDMA)
                if reply >= first, Int(reply - first) <= (freeDepth - 1) * frameSize {
                    let frame = frames + Int(reply - first)
                    status = UInt16(littleEndian: frame.loadUnaligned(fromByteOffset: MPT3SASReply.iocStatus, as: UInt16.self))
                    s.freeHostIndex = (s.freeHostIndex + 1) % freeDepth
                    free.storeBytes(of: UInt32(reply).littleEndian, toByteOffset: s.freeHostIndex * 4, as: UInt32.self)
                    freed = true
                } else {
                    status = MPT3SASReply.IOCStatus.invalidField.rawValue  // a frame not ours: reply = 0
                }
            } else if type != MPT3SASReply.scsiIOSuccess {
                status = MPT3SASReply.IOCStatus.invalidFunction.rawValue
            }
            entry.storeBytes(of: UInt64.max, as: UInt64.self)
            s.hostIndex[msix] = (s.hostIndex[msix] + 1) % postDepth
            return (smid, status, freed)
        }
    }
}

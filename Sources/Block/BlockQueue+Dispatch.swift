// A DMA driver's transfer: bios of BIO_MAX_VECS pages (what direct I/O puts in one bio from
// a user buffer of 4 KiB pages), each split as bio_split_to_limits() splits it, each request
// mapped with dma_map_sg(), executed by the driver, unmapped at completion. A bio's requests
// are in flight together, as blk-mq dispatches a split bio's requests before the hardware
// completes any; the next bio goes once they completed. That is what the real kernels
// show on QEMU's NVMe disk under swiotlb=force: four "prp list page" blocks after direct
// reads of 1 MiB (252+252+252+252+16 KiB at once) and still four after reads of 4 MiB.
// A bio's requests complete last first (the hardware's order is issue 22's).
import DMA
import Glibc
import PhysicalMemory
import SystemPackage

extension BlockQueue {
    func dispatch(_ buffer: RequestBuffer, lba: Int, write: Bool, driver: some DMABlockDriver) throws(Errno) -> Submission {
        var done = Submission()
        // The first bio's pages start this far before its data.
        let lead = buffer.pageOffset % PhysicalMemory.pageSize
        var at = 0
        while at < buffer.length {
            let end = min(buffer.length, (lead + at) / Self.bioMaxBytes * Self.bioMaxBytes + Self.bioMaxBytes - lead)
            while at < end {
                at = try dispatch(buffer, from: at, to: end, lba: lba, write: write, depth: 0, driver: driver, &done)
            }
        }
        return done
    }

    /// Sends bio [start, end) of the buffer: one request, and inside its flight the next
    /// ones. Returns where it stopped: the end, or a request that found no bounce buffer
    /// while others were in flight (the caller goes on from there once they completed).
    private func dispatch(_ bio: RequestBuffer, from start: Int, to end: Int, lba: Int, write: Bool, depth: Int,
                          driver: some DMABlockDriver, _ done: inout Submission) throws(Errno) -> Int {
        let count = min(bio.splitLength(from: start, limits), end - start)
        guard count > 0 else { throw .invalidArgument }
        let piece = bio.piece(depth, limits)
        piece.borrow(from: bio, start: start, count: count)
        defer { piece.release() }
        guard let segments = piece.mapScatterList() else { throw .invalidArgument }
        let list = UnsafeMutableBufferPointer(rebasing: piece.scatterList[0..<segments])
        let direction: DMADirection = write ? .toDevice : .fromDevice
        if device.mapSG(list, direction, attributes: .noWarn) == 0 {
            if depth > 0 { return start }
            try requeue(list, direction, bytes: count)
        }
        defer { device.unmapSG(list, direction) }
        done.requests += 1
        for entry in list where entry.dmaAddress != entry.phys { done.bounced += entry.length }
        var reached = start + count
        let command = BlockCommand(write: write, lba: lba + start / BlockLimits.sectorSize, sectors: count / BlockLimits.sectorSize)
        try driver.execute(command, list) { () throws(Errno) in
            guard reached < end else { return }
            reached = try dispatch(bio, from: reached, to: end, lba: lba, write: write, depth: depth + 1, driver: driver, &done)
        }
        return reached
    }

    /// BLK_STS_RESOURCE: the request is requeued until swiotlb has room again (or has
    /// grown), for requeueLimit at most.
    private func requeue(_ list: UnsafeMutableBufferPointer<ScatterEntry>, _ direction: DMADirection, bytes: Int) throws(Errno) {
        let started = ContinuousClock.now
        repeat {
            guard ContinuousClock.now - started < Self.requeueLimit else {
                device.err("I/O error: no bounce buffer for \(bytes) bytes")
                throw .ioError
            }
            usleep(50)
        } while device.mapSG(list, direction, attributes: .noWarn) == 0
    }
}

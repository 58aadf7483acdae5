// A DMA driver's transfer: bios of BIO_MAX_VECS pages (what direct I/O puts in one bio from
// a user buffer of 4 KiB pages), each split as bio_split_to_limits() splits it, each request
// mapped with dma_map_sg(), executed by the driver, unmapped at completion (by the driver's
// interrupt handler where it has one, nvme's; else here, once the driver returns). A bio's requests
// are in flight together, as blk-mq dispatches a split bio's requests before the hardware
// completes any; the next bio goes once they completed. That is what the real kernels
// show on QEMU's NVMe disk under swiotlb=force: four "prp list page" blocks after direct
// reads of 1 MiB (252+252+252+252+16 KiB at once) and still four after reads of 4 MiB.
import DMA
import Glibc
import Lib
import PhysicalMemory
import SystemPackage

extension BlockQueue {
    /// The calling thread's requests in flight up its stack (a bio sent behind another's).
    private static let flight = ThreadWord()

    private static var inFlightHere: Int { Int(bitPattern: flight.value) }

    func dispatch(_ buffer: RequestBuffer, lba: Int, write: Bool, driver: some DMABlockDriver,
                  behind: () throws(Errno) -> Void) throws(Errno) -> Submission {
        var done = Submission()
        // The first bio's pages start this far before its data.
        let lead = buffer.pageOffset % PhysicalMemory.pageSize
        var at = 0
        var sentBehind = false
        // What goes behind rides in the flight of the last bio's last request.
        let last = { (reached: Int) throws(Errno) in
            guard reached == buffer.length, !sentBehind else { return }
            sentBehind = true
            try behind()
        }
        while at < buffer.length {
            let end = min(buffer.length, (lead + at) / Self.bioMaxBytes * Self.bioMaxBytes + Self.bioMaxBytes - lead)
            while at < end {
                at = try dispatch(buffer, from: at, to: end, lba: lba, write: write, depth: 0, driver: driver, &done, last: last)
            }
        }
        if !sentBehind { try behind() }
        return done
    }

    /// Sends bio [start, end) of the buffer: one request, and inside its flight the next
    /// ones. Returns where it stopped: the end, or a request that found no bounce buffer
    /// while others were in flight (the caller goes on from there once they completed).
    private func dispatch(_ bio: RequestBuffer, from start: Int, to end: Int, lba: Int, write: Bool, depth: Int,
                          driver: some DMABlockDriver, _ done: inout Submission,
                          last: (Int) throws(Errno) -> Void) throws(Errno) -> Int {
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
            // Sent behind the task's other bios, whose slots come back only when they
            // complete: the caller sends this one again once they have.
            if Self.inFlightHere > 0 { throw .resourceTemporarilyUnavailable }
            try requeue(list, direction, bytes: count)
        }
        // A driver whose interrupt unmaps its requests owns the mapping from here.
        defer { if !driver.unmapsAtCompletion { device.unmapSG(list, direction) } }
        done.requests += 1
        for entry in list where entry.dmaAddress != entry.phys { done.bounced += entry.length }
        var reached = start + count
        let command = BlockCommand(write: write, lba: lba + start / BlockLimits.sectorSize, sectors: count / BlockLimits.sectorSize)
        try driver.execute(command, list) { () throws(Errno) in
            guard reached < end else {
                let outer = Self.flight.value
                Self.flight.value = UnsafeRawPointer(bitPattern: Self.inFlightHere + 1)
                defer { Self.flight.value = outer }
                return try last(reached)
            }
            reached = try dispatch(bio, from: reached, to: end, lba: lba, write: write, depth: depth + 1, driver: driver, &done, last: last)
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

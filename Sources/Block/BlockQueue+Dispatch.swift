// A DMA driver's bio, for a submitter that waits for it (the `disk` file, a stacked
// driver's clone): cut into bios of BIO_MAX_VECS pages (what direct I/O puts in one bio
// from a user buffer of 4 KiB pages), each split as bio_split_to_limits() splits it, each
// request mapped with dma_map_sg() and queued with the driver, a bio's requests in flight
// together, as blk-mq dispatches a split bio's requests before the hardware completes any;
// the next bio goes once they completed. That is what the real kernels show on QEMU's NVMe
// disk under swiotlb=force: four "prp list page" blocks after direct reads of 1 MiB
// (252+252+252+252+16 KiB at once) and still four after reads of 4 MiB. The requests go
// through the buffer's own BlockFlight, as an asynchronous submitter's go through its.
import DMA
import Glibc
import SystemPackage

extension BlockQueue {
    func dispatch(_ buffer: RequestBuffer, lba: Int, write: Bool) throws(Errno) -> Submission {
        let flight = buffer.flight(self)
        let before = flight.sent
        flight.send(buffer, lba: lba, write: write, slot: 0)
        while let (_, error) = flight.next() {
            if let error { throw error }
        }
        return Submission(requests: flight.sent.requests - before.requests, bounced: flight.sent.bounced - before.bounced)
    }

    /// BLK_STS_RESOURCE: the request is requeued until swiotlb has room again (or has
    /// grown), for requeueLimit at most.
    func requeue(_ list: UnsafeMutableBufferPointer<ScatterEntry>, _ direction: DMADirection, bytes: Int) throws(Errno) {
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

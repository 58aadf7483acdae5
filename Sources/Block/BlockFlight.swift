// One task's requests in flight, as an aio context holds them for fio's libaio engine. The
// task sends a buffer into one of its slots; the slot's bios go out one at a time (a bio's
// requests in flight together, the next bio once they completed, as dispatch sends them),
// each request queued with the driver without waiting (queue_rq). The task reaps the
// requests oldest first (io_getevents) and gets back each slot whose buffer is done, while
// the other slots' requests are still in flight, so it can refill it at once. The plug
// ends (commit_rqs) when the task says and before it waits. A request that finds swiotlb
// full waits for the flight's others to complete, or is requeued when there are none. A
// stacked driver, which cannot queue without waiting (dm-crypt), runs a buffer to its end
// when it is sent.
import DMA
import PhysicalMemory
import SystemPackage

final class BlockFlight {
    private struct Request {
        let piece: RequestBuffer
        let slot: Int
        let list: UnsafeMutableBufferPointer<ScatterEntry>
        let direction: DMADirection
        let context: UnsafeRawPointer?
    }

    private struct Slot {
        var buffer: RequestBuffer?
        var lba = 0
        var write = false
        /// The next byte to send, and the end of the bio it is in.
        var at = 0
        var bioEnd = 0
        /// The next request's piece of that bio.
        var piece = 0
        var inFlight = 0
        var error: Errno?
        /// Its next request found no bounce buffer: sent again after the next reap.
        var stalled = false
    }

    let queue: BlockQueue
    /// The queue's driver cannot queue without waiting.
    private let stacked: Bool
    /// Weak: a buffer's flight may outlive its driver (a spare buffer kept by the queue).
    private weak var driver: (any DMABlockDriver)?
    private var slots: [Slot]
    /// The requests in flight, oldest at `head` (a ring that grows, never shrinks).
    private var ring: [Request?]
    private var head = 0
    private var count = 0
    /// Slots whose buffer is done, not yet handed back.
    private var finished: [Int] = []
    private var stalled = 0
    /// The hardware contexts requests were queued in since the plug last ended (one,
    /// unless the task moved to another CPU).
    private var queued: [UnsafeRawPointer?] = []
    /// What the sent buffers became.
    private(set) var sent = Submission()

    init(_ queue: BlockQueue, slots: Int) {
        self.queue = queue
        driver = queue.dmaDriver
        stacked = driver == nil
        self.slots = Array(repeating: Slot(), count: slots)
        ring = Array(repeating: nil, count: max(16, slots * 4))
        finished.reserveCapacity(slots)
        queued.reserveCapacity(4)
    }

    /// The buffer's bytes, read from or written to the disk from sector `lba`, through
    /// slot `slot` (free: handed back by next(), or never used).
    func send(_ buffer: RequestBuffer, lba: Int, write: Bool, slot: Int) {
        guard !stacked, let driver else {
            do throws(Errno) {
                guard stacked else { throw .noDevice }
                sent += try queue.submit(buffer, lba: lba, write: write)
            } catch {
                slots[slot].error = error
            }
            finished.append(slot)
            return
        }
        slots[slot] = Slot(buffer: buffer, lba: lba, write: write)
        startBio(slot)
        pump(slot, driver)
    }

    /// blk_finish_plug(): what was queued goes to the hardware.
    func commit() {
        guard !queued.isEmpty, let driver else { return }
        for context in queued { driver.commitRequests(context) }
        queued.removeAll(keepingCapacity: true)
    }

    /// The next slot whose buffer is done (waiting for its requests) and its error; nil
    /// when nothing is in flight.
    func next() -> (slot: Int, error: Errno?)? {
        while true {
            if let slot = finished.popLast() {
                defer { slots[slot] = Slot() }
                return (slot, slots[slot].error)
            }
            guard count > 0, let driver else { return nil }
            commit()
            reap(driver)
            if stalled > 0 {
                for slot in slots.indices where slots[slot].stalled { pump(slot, driver) }
            }
        }
    }

    private func startBio(_ slot: Int) {
        let buffer = slots[slot].buffer!
        // The first bio's pages start this far before its data.
        let lead = buffer.pageOffset % PhysicalMemory.pageSize
        let at = slots[slot].at
        slots[slot].bioEnd = min(buffer.length, (lead + at) / BlockQueue.bioMaxBytes * BlockQueue.bioMaxBytes + BlockQueue.bioMaxBytes - lead)
        slots[slot].piece = 0
    }

    /// Queues the slot's requests up to its bio's end, or until one fails or finds no
    /// bounce buffer while others are in flight.
    private func pump(_ slot: Int, _ driver: any DMABlockDriver) {
        if slots[slot].stalled {
            slots[slot].stalled = false
            stalled -= 1
        }
        let buffer = slots[slot].buffer!
        let direction: DMADirection = slots[slot].write ? .toDevice : .fromDevice
        let device = queue.device
        while slots[slot].at < slots[slot].bioEnd && slots[slot].error == nil {
            let start = slots[slot].at
            let length = min(buffer.splitLength(from: start, queue.limits), slots[slot].bioEnd - start)
            guard length > 0 else {
                slots[slot].error = .invalidArgument
                break
            }
            let piece = buffer.piece(slots[slot].piece, queue.limits)
            piece.borrow(from: buffer, start: start, count: length)
            guard let segments = piece.mapScatterList() else {
                piece.release()
                slots[slot].error = .invalidArgument
                break
            }
            let list = UnsafeMutableBufferPointer(rebasing: piece.scatterList[0..<segments])
            if device.mapSG(list, direction, attributes: .noWarn) == 0 {
                if count > 0 {
                    piece.release()
                    slots[slot].stalled = true
                    stalled += 1
                    return
                }
                do throws(Errno) {
                    try queue.requeue(list, direction, bytes: length)
                } catch {
                    piece.release()
                    slots[slot].error = error
                    break
                }
            }
            sent.requests += 1
            for entry in list where entry.dmaAddress != entry.phys { sent.bounced += entry.length }
            let command = BlockCommand(write: slots[slot].write, lba: slots[slot].lba + start / BlockLimits.sectorSize,
                                       sectors: length / BlockLimits.sectorSize)
            do throws(Errno) {
                let context = try driver.queueRequest(command, list, status: piece.status)
                push(Request(piece: piece, slot: slot, list: list, direction: direction, context: context))
                if !queued.contains(context) { queued.append(context) }
            } catch {
                if !driver.unmapsAtCompletion { device.unmapSG(list, direction) }
                piece.release()
                slots[slot].error = error
                break
            }
            slots[slot].inFlight += 1
            slots[slot].at = start + length
            slots[slot].piece += 1
        }
        if slots[slot].inFlight == 0 { finished.append(slot) }
    }

    /// The oldest request's completion; its slot goes on to its next bio, or is done.
    private func reap(_ driver: any DMABlockDriver) {
        let request = ring[head]!
        ring[head] = nil
        head = (head + 1) % ring.count
        count -= 1
        let slot = request.slot
        do throws(Errno) {
            try driver.completeRequest(request.piece.status, context: request.context)
        } catch {
            if slots[slot].error == nil { slots[slot].error = error }
        }
        if !driver.unmapsAtCompletion { queue.device.unmapSG(request.list, request.direction) }
        request.piece.release()
        slots[slot].inFlight -= 1
        guard slots[slot].inFlight == 0, !slots[slot].stalled else { return }
        if slots[slot].error != nil || slots[slot].at == slots[slot].buffer!.length {
            finished.append(slot)
        } else {
            startBio(slot)
            pump(slot, driver)
        }
    }

    private func push(_ request: Request) {
        if count == ring.count {
            // Grown in place, oldest first again.
            var grown = [Request?](repeating: nil, count: ring.count * 2)
            for i in 0..<count { grown[i] = ring[(head + i) % ring.count] }
            ring = grown
            head = 0
        }
        ring[(head + count) % ring.count] = request
        count += 1
    }
}

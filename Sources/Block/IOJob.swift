// The `io` file: "<read|write|verify> <bytes> [count=N] [threads=N] [iodepth=N]
// [iodepth_batch=N] [offset=B] [random] [seed=S]". Each thread does `count` transfers of
// `bytes` through the driver with `iodepth` of them in flight, as fio's libaio engine
// keeps them: the thread's requests are queued without waiting (BlockFlight), it reaps
// them oldest first, and each slot whose transfer completed gets the next one at once.
// `iodepth_batch` (fio's iodepth_batch_submit) is how many transfers go under one plug:
// the plug ends (the driver's commit_rqs, nvme's doorbell) after every that many sent, and
// whenever the thread waits, so the device starts on them while the thread sends the rest;
// its default is iodepth, as one io_submit() of the first batch under a plug sends them
// (fio's own default is 1). Sequential transfers follow each other from
// `offset` (thread t starts t * count transfers in), random ones land on `bytes`-aligned
// offsets drawn from the seed. `write` puts the seeded pattern on the disk, `verify` writes
// each transfer and reads it back, failing with EIO on the first byte that differs. A
// transfer that is not whole sectors reads them first, as the page cache would. The write
// returns when every transfer is done.
import DMA
import Glibc
import Lib
import PhysicalMemory
import SystemPackage

public struct IOJob: Equatable, Sendable {
    public enum Operation: String, Sendable { case read, write, verify }

    public var operation: Operation
    public var bytes: Int
    public var count = 1
    public var threads = 1
    public var iodepth = 1
    /// Transfers per plug; nil: the whole batch.
    public var iodepthBatch: Int?
    public var offset = 0
    public var random = false
    public var seed: UInt64 = 1

    public static let maxThreads = 64
    /// fio's libaio takes any depth; past the largest tag set (NVMe's 1023) more only wait.
    public static let maxIODepth = 1024
    public static let maxTransfers = 10_000_000
    /// The most one write moves (about a minute at this machine's copy speed): a job of a
    /// terabyte would hold its writer, and a FUSE thread, for hours.
    public static let maxJobBytes = 64 << 30

    /// Parses the written line; EINVAL for anything malformed or absurd.
    public init(parsing text: String) throws(Errno) {
        let words = StoreParsing.words(text)
        guard words.count >= 2, let operation = Operation(rawValue: words[0]) else { throw .invalidArgument }
        self.operation = operation
        bytes = Int(try StoreParsing.size(words[1], max: 1 << 30))
        guard bytes > 0 else { throw .invalidArgument }
        var seen = Set<String>()
        for word in words.dropFirst(2) {
            // Empty pieces kept: a lone "=" is a key "" and a value "", not no key at all.
            let parts = word.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false).map(String.init)
            guard seen.insert(parts[0]).inserted else { throw .invalidArgument }
            switch (parts[0], parts.count) {
            case ("random", 1): random = true
            case ("count", 2): count = Int(try StoreParsing.number(parts[1], max: UInt64(Self.maxTransfers)))
            case ("threads", 2): threads = Int(try StoreParsing.number(parts[1], max: UInt64(Self.maxThreads)))
            case ("iodepth", 2): iodepth = Int(try StoreParsing.number(parts[1], max: UInt64(Self.maxIODepth)))
            case ("iodepth_batch", 2): iodepthBatch = Int(try StoreParsing.number(parts[1], max: UInt64(Self.maxIODepth)))
            case ("offset", 2): offset = Int(try StoreParsing.size(parts[1], max: 1 << 50))
            case ("seed", 2): seed = try StoreParsing.number(parts[1])
            default: throw .invalidArgument
            }
        }
        guard count >= 1, threads >= 1, iodepth >= 1, count * threads <= Self.maxTransfers else { throw .invalidArgument }
        if let iodepthBatch { guard (1...iodepth).contains(iodepthBatch) else { throw .invalidArgument } }
    }

    /// The disk offset of thread `thread`'s transfer `index`.
    @inline(__always)
    func position(thread: Int, index: Int, generator: inout SplitMix, capacity: Int) -> Int {
        guard random else { return offset + (thread * count + index) * bytes }
        let slots = (capacity - offset - bytes) / bytes + 1
        return offset + Int(generator.next() % UInt64(slots)) * bytes
    }

    /// Checks the job against the queue before any I/O: EINVAL (with a kernel-style line)
    /// for more than maxJobBytes or a range beyond the disk. A transfer larger than one
    /// request is split as the kernel splits a bio.
    public func validate(_ queue: BlockQueue) throws(Errno) {
        guard bytes * count * threads <= Self.maxJobBytes else {
            queue.device.err("dmaemu: io job of \(bytes * count * threads) bytes exceeds the \(Self.maxJobBytes >> 30) GiB a write may move")
            throw .invalidArgument
        }
        let last = random ? offset + bytes : offset + threads * count * bytes
        guard last <= queue.capacity else {
            queue.device.err(
                "dmaemu: attempt to access beyond end of device: sector=\(offset / BlockLimits.sectorSize), "
                    + "nr_sectors = \((last - offset + 511) / 512) limit=\(queue.capacity / BlockLimits.sectorSize)")
            throw .invalidArgument
        }
    }

    /// Runs the job on `queue`; accounts in its stats. EIO if any transfer failed or
    /// (verify) read back something else.
    public func run(on queue: BlockQueue) throws(Errno) {
        try validate(queue)
        // The whole job, its flush included, is I/O in flight: remove waits for all of it.
        try queue.enter { () throws(Errno) in try transfers(on: queue) }
    }

    private func transfers(on queue: BlockQueue) throws(Errno) {
        let results = UnsafeMutableBufferPointer<ThreadResult>.allocate(capacity: threads)
        results.initialize(repeating: ThreadResult())
        defer { results.deallocate() }
        let latencies = UnsafeMutableBufferPointer<Int>.allocate(capacity: threads * count)
        defer { latencies.deallocate() }
        let job = self
        let start = ContinuousClock.now
        runThreads(threads) { thread in
            let slice = UnsafeMutableBufferPointer(rebasing: latencies[(thread * job.count)..<((thread + 1) * job.count)])
            results[thread] = job.work(thread: thread, queue: queue, latencies: slice)
        }
        let elapsed = ContinuousClock.now - start
        var total = ThreadResult()
        for r in results {
            total.done += r.done
            total.requests += r.requests
            total.bounced += r.bounced
            total.errors += r.errors
            total.mismatch = total.mismatch ?? r.mismatch
            total.failed = total.failed ?? r.failed
        }
        let transfers = operation == .verify ? 2 : 1
        queue.stats.account(ios: total.requests, bytes: total.done * bytes * transfers, bounced: total.bounced, errors: total.errors)
        var samples: [Int] = []
        for thread in 0..<threads { samples += latencies[(thread * count)..<(thread * count + results[thread].done)] }
        queue.stats.finishRun(bytes: total.done * bytes * transfers, seconds: elapsed.seconds, latencies: &samples)
        // blk_print_req_error()'s words, once per job rather than per request.
        if let failed = total.failed {
            queue.device.err(
                "I/O error, dev \(queue.device.name), sector \(failed.offset / BlockLimits.sectorSize) "
                    + "op 0x\(failed.write ? 1 : 0):(\(failed.write ? "WRITE" : "READ"))")
        }
        if let mismatch = total.mismatch {
            queue.device.err("dmaemu: verify failed at byte \(mismatch): data read back differs from data written")
        }
        guard total.errors == 0, total.mismatch == nil else { throw .ioError }
        // Acknowledged means durable: a file-backed disk is synced before the write returns.
        if operation != .read {
            do throws(Errno) {
                try queue.flush()
            } catch {
                queue.device.err("dmaemu: flush of the backing file failed: \(error)")
                throw .ioError
            }
        }
    }

    struct ThreadResult {
        var done = 0
        /// The requests the transfers became (split bios, read-modify-write reads).
        var requests = 0
        var bounced = 0
        var errors = 0
        var mismatch: Int?
        /// The transfer that failed: its disk offset and whether it wrote.
        var failed: (offset: Int, write: Bool)?

        mutating func add(_ sent: Submission) {
            requests += sent.requests
            bounced += sent.bounced
        }
    }

    /// What a slot's transfer is waiting for.
    private enum Stage { case readModify, write, read }

    private struct InFlight {
        var position = 0
        var stage = Stage.read
        var began = ContinuousClock.now
    }

    /// One thread's transfers, `iodepth` of them in flight, each slot with its own request
    /// buffer refilled as its transfer completes (fio's libaio loop); stops starting
    /// transfers at the first error, and returns once those in flight completed.
    private func work(thread: Int, queue: BlockQueue, latencies: UnsafeMutableBufferPointer<Int>) -> ThreadResult {
        var result = ThreadResult()
        let slots = min(iodepth, count)
        // Room for the transfer's sectors wherever they start in a page.
        let capacity = max(queue.limits.maxTransfer, bytes + 2 * BlockLimits.sectorSize)
        let buffers = (0..<slots).map { _ in queue.makeBuffer(capacity: capacity) }
        var transfers = [InFlight](repeating: InFlight(), count: slots)
        let flight = BlockFlight(queue, slots: slots)
        var generator = SplitMix(seed: seed &+ UInt64(thread) &* 0x1000_0000_01b3)
        var started = 0
        let batch = iodepthBatch ?? slots

        /// The next transfer into `slot`: its buffer's pages, and its first bio sent.
        func start(_ slot: Int) {
            let position = self.position(thread: thread, index: started, generator: &generator, capacity: queue.capacity)
            started += 1
            let (first, end) = BlockQueue.span(position, bytes)
            let buffer = buffers[slot]
            transfers[slot] = InFlight(position: position, stage: operation == .read ? .read : .write, began: .now)
            guard buffer.allocate(length: end - first, pageOffset: first % PhysicalMemory.pageSize) else {
                fail(slot, .noMemory)
                return
            }
            if operation != .read && (first != position || end != position + bytes) {
                transfers[slot].stage = .readModify
                flight.send(buffer, lba: first / BlockLimits.sectorSize, write: false, slot: slot)
            } else {
                send(slot)
            }
            if started % batch == 0 { flight.commit() }
        }

        /// The slot's transfer at its stage: the pattern put in before its write.
        func send(_ slot: Int) {
            let buffer = buffers[slot]
            let position = transfers[slot].position
            let lba = BlockQueue.span(position, bytes).start / BlockLimits.sectorSize
            let at = position - lba * BlockLimits.sectorSize
            if transfers[slot].stage == .write {
                buffer.withPieces(from: at, count: bytes) { memory, piece, length in
                    DataPattern.fill(memory, offset: position + piece - at, count: length, seed: seed)
                }
            } else if operation == .verify {
                // What was written must not be what is found if the read brought nothing.
                buffer.withPieces(from: 0, count: buffer.length) { memory, _, length in memset(memory, 0xa5, length) }
            }
            flight.send(buffer, lba: lba, write: transfers[slot].stage == .write, slot: slot)
        }

        /// The first error is the job's; no transfer starts after it.
        var stopped = false
        func fail(_ slot: Int, _ error: Errno) {
            if !stopped {
                result.errors += 1
                result.failed = (transfers[slot].position, transfers[slot].stage == .write)
            }
            stopped = true
            buffers[slot].release()
        }

        for slot in 0..<slots where !stopped { start(slot) }
        while let (slot, error) = flight.next() {
            if let error {
                fail(slot, error)
                continue
            }
            guard !stopped else {
                buffers[slot].release()
                continue
            }
            switch transfers[slot].stage {
            case .readModify:
                transfers[slot].stage = .write
                send(slot)
                continue
            case .write where operation == .verify:
                transfers[slot].stage = .read
                send(slot)
                continue
            case .read where operation == .verify:
                if let bad = mismatch(buffers[slot], at: transfers[slot].position) {
                    result.mismatch = bad
                    stopped = true
                    buffers[slot].release()
                    continue
                }
            default: break
            }
            latencies[result.done] = Int((ContinuousClock.now - transfers[slot].began).nanoseconds)
            result.done += 1
            buffers[slot].release()
            if started < count { start(slot) }
        }
        result.add(flight.sent)
        return result
    }

    /// The disk offset of the first byte of the transfer at `position` that differs from
    /// the pattern, if one does.
    private func mismatch(_ buffer: RequestBuffer, at position: Int) -> Int? {
        let at = position % BlockLimits.sectorSize
        var found: Int?
        buffer.withPieces(from: at, count: bytes) { memory, piece, length in
            guard found == nil,
                  let bad = DataPattern.firstMismatch(memory, offset: position + piece - at, count: length, seed: seed) else { return }
            found = position + piece - at + bad
        }
        return found
    }
}

/// splitmix64: the random offsets' generator.
public struct SplitMix {
    private var state: UInt64
    public init(seed: UInt64) { state = seed }
    public mutating func next() -> UInt64 {
        state &+= 0x9e37_79b9_7f4a_7c15
        return DataPattern.word(state, 0)
    }
}

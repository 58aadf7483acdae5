// The `io` file: "<read|write|verify> <bytes> [count=N] [threads=N] [iodepth=N]
// [iodepth_batch=N] [offset=B] [random] [seed=S]". Each thread does `count` transfers of
// `bytes` through the driver, `iodepth` of them in flight at once (fio's iodepth): each
// transfer's bios go out while the one before it is in flight, and the batch completes
// together before the next one is sent. `iodepth_batch` (fio's iodepth_batch_submit) is how
// many transfers go under one plug: the plug ends (the driver's commit_rqs, nvme's
// doorbell) after every that many, so the device starts on them while the thread sends the
// rest. Its default is the whole batch, as one io_submit() of them under a plug sends
// them; fio's own default is 1. Sequential transfers follow each other from `offset`
// (thread t starts t * count transfers in), random ones land on `bytes`-aligned offsets
// drawn from the seed. `write` puts the seeded pattern on the disk, `verify` writes a
// batch and reads it back, failing with EIO on the first byte that differs. The write
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

    /// One thread's transfers, `iodepth` at a time, each with its own request buffer;
    /// stops at the first error. A transfer's latency is its batch's.
    private func work(thread: Int, queue: BlockQueue, latencies: UnsafeMutableBufferPointer<Int>) -> ThreadResult {
        var result = ThreadResult()
        // Room for the transfer's sectors wherever they start in a page.
        let buffers = (0..<min(iodepth, count)).map { _ in queue.makeBuffer(capacity: max(queue.limits.maxTransfer, bytes + 2 * BlockLimits.sectorSize)) }
        var positions = [Int](repeating: 0, count: buffers.count)
        var generator = SplitMix(seed: seed &+ UInt64(thread) &* 0x1000_0000_01b3)
        var current = (offset: 0, write: false)
        do throws(Errno) {
            var index = 0
            while index < count {
                let batch = min(buffers.count, count - index)
                for k in 0..<batch {
                    positions[k] = self.position(thread: thread, index: index + k, generator: &generator, capacity: queue.capacity)
                }
                let began = ContinuousClock.now
                // A transfer that found swiotlb full behind the others of its batch goes
                // again, first of what is left, once they completed.
                if operation != .read {
                    current = (positions[0], true)
                    var sent = 0
                    while sent < batch {
                        sent = try sendBatch(from: sent, to: batch, queue, &result) { (k, _, behind) throws(Errno) in
                            try writePattern(queue, buffers[k], at: positions[k], behind: behind)
                        }
                    }
                }
                if operation != .write {
                    current = (positions[0], false)
                    var read = 0
                    while read < batch {
                        read = try sendBatch(from: read, to: batch, queue, &result) { (k, result, behind) throws(Errno) in
                            try readBack(queue, buffers[k], at: positions[k], mismatch: &result.mismatch, behind: behind)
                        }
                    }
                }
                let took = Int((ContinuousClock.now - began).nanoseconds)
                for k in 0..<batch { latencies[index + k] = took }
                result.done += batch
                index += batch
            }
        } catch {
            if result.mismatch == nil {
                result.errors += 1
                result.failed = current
            }
        }
        return result
    }

    /// Transfers k... of a batch, each sent by `send` while the one before it is in flight.
    /// Returns where it stopped: the batch's end, or a transfer whose bounce buffers have
    /// to wait for the others' (EAGAIN from behind them).
    private func sendBatch(from k: Int, to batch: Int, _ queue: BlockQueue, _ result: inout ThreadResult,
                           _ send: (Int, inout ThreadResult, () throws(Errno) -> Void) throws(Errno) -> Submission) throws(Errno) -> Int {
        var reached = k + 1
        var behind = ThreadResult()
        defer {
            result.add(Submission(requests: behind.requests, bounced: behind.bounced))
            if result.mismatch == nil { result.mismatch = behind.mismatch }
        }
        // `send` is called again from inside its own call (a batch nests), which Swift's
        // exclusivity check refuses for a non-escaping closure; nothing keeps it past this.
        let sent = try withoutActuallyEscaping(send) { send in
            Result { () throws(Errno) in
                try send(k, &result) { () throws(Errno) in
                    guard reached < batch else { return }
                    if reached % (iodepthBatch ?? batch) == 0 { queue.finishPlug() }
                    do throws(Errno) {
                        reached = try sendBatch(from: reached, to: batch, queue, &behind, send)
                    } catch {
                        guard error == .resourceTemporarilyUnavailable else { throw error }
                    }
                }
            }
        }.get()
        result.add(sent)
        return reached
    }

    /// Writes the seeded pattern of disk bytes [position, position + bytes).
    private func writePattern(_ queue: BlockQueue, _ buffer: RequestBuffer, at position: Int,
                              behind: () throws(Errno) -> Void) throws(Errno) -> Submission {
        let (bytes, seed) = (self.bytes, self.seed)
        return try queue.transfer(buffer, write: true, offset: position, count: bytes, behind: behind) { (buffer, at) throws(Errno) in
            try buffer.withPieces(from: at, count: bytes) { (memory, piece, length) throws(Errno) in
                DataPattern.fill(memory, offset: position + piece - at, count: length, seed: seed)
            }
        }
    }

    /// Reads disk bytes [position, position + bytes); a verify checks them against the
    /// pattern and fails with EIO at the first that differs (its disk offset in `mismatch`).
    private func readBack(_ queue: BlockQueue, _ buffer: RequestBuffer, at position: Int, mismatch: inout Int?,
                          behind: () throws(Errno) -> Void) throws(Errno) -> Submission {
        let (bytes, seed, verify) = (self.bytes, self.seed, operation == .verify)
        var found: Int?
        defer { if found != nil { mismatch = found } }
        return try queue.transfer(buffer, write: false, offset: position, count: bytes, behind: behind) { (buffer, at) throws(Errno) in
            guard verify else { return }
            try buffer.withPieces(from: at, count: bytes) { (memory, piece, length) throws(Errno) in
                if let bad = DataPattern.firstMismatch(memory, offset: position + piece - at, count: length, seed: seed) {
                    found = position + piece - at + bad
                    throw .ioError
                }
            }
        }
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

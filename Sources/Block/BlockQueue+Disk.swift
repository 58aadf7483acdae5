// The `disk` file: read(2) and write(2) at any offset and length, cut into bios of at most
// BIO_MAX_VECS pages (each split into requests as the queue's limits say) and sent through
// the driver's whole path, as the block device's page cache would send them. Reads stop at the end of the disk; writes beyond it are ENOSPC.
import SystemPackage

extension BlockQueue {
    public func read(into user: UnsafeMutableRawBufferPointer, at offset: Int) throws(Errno) -> Int {
        guard offset >= 0 else { throw .invalidArgument }
        guard offset < capacity, let base = user.baseAddress else { return 0 }
        let total = min(user.count, capacity - offset)
        return try cut(total, offset, write: false) { buffer, at, done, count throws(Errno) in
            buffer.withPieces(from: at, count: count) { memory, piece, length in
                (base + done + piece - at).copyMemory(from: memory, byteCount: length)
            }
        }
    }

    public func write(from user: UnsafeRawBufferPointer, at offset: Int) throws(Errno) -> Int {
        guard offset >= 0 else { throw .invalidArgument }
        guard let base = user.baseAddress else { return 0 }
        guard offset < capacity else { throw .noSpace }
        let total = min(user.count, capacity - offset)
        return try cut(total, offset, write: true) { buffer, at, done, count throws(Errno) in
            buffer.withPieces(from: at, count: count) { memory, piece, length in
                memory.copyMemory(from: base + done + piece - at, byteCount: length)
            }
        }
    }

    /// Sends [offset, offset + total) as bios of at most bioMaxBytes (ending at multiples
    /// of it); `data(buffer, offset in buffer, bytes done, count)` fills or drains.
    private func cut(_ total: Int, _ offset: Int, write: Bool,
                     _ data: (RequestBuffer, Int, Int, Int) throws(Errno) -> Void) throws(Errno) -> Int {
        let limit = Self.bioMaxBytes
        return try enter { () throws(Errno) -> Int in
            try withSpareBuffer { (buffer) throws(Errno) -> Int in
                var done = 0
                var sent = Submission()
                defer { stats.account(ios: sent.requests, bytes: done, bounced: sent.bounced, errors: 0) }
                do throws(Errno) {
                    while done < total {
                        let position = offset + done
                        let count = min(total - done, (position / limit + 1) * limit - position)
                        sent += try transfer(buffer, write: write, offset: position, count: count) { (buffer, at) throws(Errno) in
                            try data(buffer, at, done, count)
                        }
                        done += count
                    }
                } catch {
                    stats.account(ios: 0, bytes: 0, bounced: 0, errors: 1)
                    if done == 0 { throw error }
                }
                return done
            }
        }
    }
}

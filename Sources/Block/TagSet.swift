// A driver's command tags (blk-mq's tag set: SMIDs for the HBA, command ids for NVMe).
// A submitter that finds none waits, as a full queue holds its requests back.
import Glibc
import Locking

public final class TagSet: Sendable {
    private let free: PthreadMutex<[Int]>

    /// Tags are handed out lowest first.
    public init(_ tags: ClosedRange<Int>) { free = PthreadMutex(Array(tags.reversed())) }

    public func get() -> Int {
        while true {
            if let tag = free.withLock({ $0.popLast() }) { return tag }
            usleep(10)
        }
    }

    /// A tag; while there is none, `flush` goes first (blk_mq_get_tag() sleeps, and a task
    /// that sleeps sends its plug's requests to the hardware), so that a submitter whose own
    /// queued requests hold the tags does not wait for itself.
    public func get(flushing flush: () -> Void) -> Int {
        while true {
            if let tag = free.withLock({ $0.popLast() }) { return tag }
            flush()
            if let tag = free.withLock({ $0.popLast() }) { return tag }
            usleep(10)
        }
    }

    public func put(_ tag: Int) { free.withLock { $0.append(tag) } }

    /// The tags no request holds.
    public var available: Int { free.withLock { $0.count } }
}

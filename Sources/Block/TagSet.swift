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

    public func put(_ tag: Int) { free.withLock { $0.append(tag) } }
}

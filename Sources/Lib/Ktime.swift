// Time as the kernel reads and spends it: ktime_get_ns() on the monotonic clock, ndelay()
// as a busy wait (the cost model of work a kernel would do in that place), and Durations
// in the units printk stamps and the stats files print.
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// ktime_get_ns().
public func monotonicNs() -> UInt64 {
    var time = timespec()
    clock_gettime(CLOCK_MONOTONIC, &time)
    return UInt64(time.tv_sec) * 1_000_000_000 + UInt64(time.tv_nsec)
}

/// Busy-waits `ns`, as ndelay() does.
public func ndelay(_ ns: Int) {
    guard ns > 0 else { return }
    let end = monotonicNs() + UInt64(ns)
    while monotonicNs() < end {}
}

extension Duration {
    /// Whole nanoseconds (ktime_to_ns()).
    public var nanoseconds: Int64 { components.seconds * 1_000_000_000 + components.attoseconds / 1_000_000_000 }
    /// Whole microseconds, truncated (ktime_to_us()).
    public var microseconds: Int64 { components.seconds * 1_000_000 + components.attoseconds / 1_000_000_000_000 }
    /// Seconds as a fraction, for rates.
    public var seconds: Double { Double(components.seconds) + Double(components.attoseconds) / 1e18 }
}

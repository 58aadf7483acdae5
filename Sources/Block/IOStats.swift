// A block device's I/O counters (stats): totals since probe, and the last `io` run's
// bandwidth and latencies.
import Locking

public final class IOStats: Sendable {
    public struct Totals: Equatable, Sendable {
        public var ios = 0
        public var bytes = 0
        public var bouncedBytes = 0
        public var errors = 0

        public init(ios: Int = 0, bytes: Int = 0, bouncedBytes: Int = 0, errors: Int = 0) {
            self.ios = ios
            self.bytes = bytes
            self.bouncedBytes = bouncedBytes
            self.errors = errors
        }
    }

    public struct LastRun: Equatable, Sendable {
        public var mibPerSecond = 0.0
        public var averageMicroseconds = 0.0
        public var p99Microseconds = 0.0
    }

    private let totals = PthreadMutex(Totals())
    private let last = PthreadMutex(LastRun())

    public init() {}

    public func account(ios: Int, bytes: Int, bounced: Int, errors: Int) {
        totals.withLock {
            $0.ios += ios
            $0.bytes += bytes
            $0.bouncedBytes += bounced
            $0.errors += errors
        }
    }

    /// A finished run: `latencies` in nanoseconds (sorted here), over `seconds` of wall time.
    public func finishRun(bytes: Int, seconds: Double, latencies: inout [Int]) {
        latencies.sort()
        var run = LastRun()
        if seconds > 0 { run.mibPerSecond = Double(bytes) / seconds / 1_048_576 }
        if !latencies.isEmpty {
            run.averageMicroseconds = Double(latencies.reduce(0, +)) / Double(latencies.count) / 1000
            // Nearest rank: the smallest latency at or above 99% of the samples.
            let rank = (latencies.count * 99 + 99) / 100
            run.p99Microseconds = Double(latencies[rank - 1]) / 1000
        }
        last.withLock { $0 = run }
    }

    public var current: (Totals, LastRun) { (totals.withLock { $0 }, last.withLock { $0 }) }

    /// The stats file's I/O lines, in order.
    public var values: [(name: String, value: String)] {
        let (t, r) = current
        func fixed(_ value: Double) -> String {
            let hundredths = Int((value * 100).rounded())
            let fraction = hundredths % 100
            return "\(hundredths / 100).\(fraction < 10 ? "0" : "")\(fraction)"
        }
        return [
            ("ios", String(t.ios)), ("bytes", String(t.bytes)), ("bounced_bytes", String(t.bouncedBytes)),
            ("errors", String(t.errors)), ("last_mib_s", fixed(r.mibPerSecond)), ("avg_lat_us", fixed(r.averageMicroseconds)),
            ("p99_lat_us", fixed(r.p99Microseconds)),
        ]
    }
}

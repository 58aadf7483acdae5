// A block device's I/O counters (stats): totals since probe, and the last `io` run's
// bandwidth and latencies.
import Locking

final class IOStats: Sendable {
    struct Totals: Equatable {
        var ios = 0
        var bytes = 0
        var bouncedBytes = 0
        var errors = 0
    }

    struct LastRun: Equatable {
        var mibPerSecond = 0.0
        var averageMicroseconds = 0.0
        var p99Microseconds = 0.0
    }

    private let totals = PthreadMutex(Totals())
    private let last = PthreadMutex(LastRun())

    func account(ios: Int, bytes: Int, bounced: Int, errors: Int) {
        totals.withLock {
            $0.ios += ios
            $0.bytes += bytes
            $0.bouncedBytes += bounced
            $0.errors += errors
        }
    }

    /// A finished run: `latencies` in nanoseconds (sorted here), over `seconds` of wall time.
    func finishRun(bytes: Int, seconds: Double, latencies: inout [Int]) {
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

    var current: (Totals, LastRun) { (totals.withLock { $0 }, last.withLock { $0 }) }

    /// The stats file's I/O lines.
    var text: String {
        let (t, r) = current
        func fixed(_ value: Double) -> String {
            let hundredths = Int((value * 100).rounded())
            let fraction = hundredths % 100
            return "\(hundredths / 100).\(fraction < 10 ? "0" : "")\(fraction)"
        }
        return """
            ios \(t.ios)
            bytes \(t.bytes)
            bounced_bytes \(t.bouncedBytes)
            errors \(t.errors)
            last_mib_s \(fixed(r.mibPerSecond))
            avg_lat_us \(fixed(r.averageMicroseconds))
            p99_lat_us \(fixed(r.p99Microseconds))

            """
    }
}

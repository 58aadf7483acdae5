// ___ratelimit(): at most `burst` messages per `interval`; when a new interval starts
// after drops, "<function>: N callbacks suppressed" is printed first, as the kernel does.
import Lib
import Locking

public final class RateLimit: Sendable {
    private struct State {
        var begin: UInt64 = 0
        var printed = 0
        var missed = 0
    }

    public let intervalNs: UInt64
    public let burst: Int
    private let state = PthreadMutex(State())

    /// DEFAULT_RATELIMIT_INTERVAL (5 s) and DEFAULT_RATELIMIT_BURST (10).
    public init(intervalNs: UInt64 = 5_000_000_000, burst: Int = 10) {
        self.intervalNs = intervalNs
        self.burst = burst
    }

    /// Whether to print now, and how many were suppressed before (to report first).
    public func allow(now: UInt64 = monotonicNs()) -> (print: Bool, suppressed: Int) {
        state.withLock { state in
            var suppressed = 0
            if state.begin == 0 || now - state.begin >= intervalNs {
                suppressed = state.missed
                state = State(begin: now, printed: 0, missed: 0)
            }
            guard state.printed < burst else {
                state.missed += 1
                return (false, 0)
            }
            state.printed += 1
            return (true, suppressed)
        }
    }
}

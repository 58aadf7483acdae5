// Page-allocator fault injection, the emulated fail_page_alloc: tests make the Nth
// allocation fail, or a seeded fraction of them, to prove that every caller turns a
// failed page allocation into a clean error. Each page asked of the allocator counts
// once, whether it came through alloc_pages or the bulk allocator.
import Synchronization

public final class FaultInjection: Sendable {
    public enum Mode: Sendable, Equatable {
        case off
        /// The nth allocation from now fails (1 = the next one); the rest succeed.
        case failNth(Int)
        /// Each allocation fails with this probability, drawn from a seeded generator.
        case fraction(Double, seed: UInt64)
    }

    private struct State {
        var mode: Mode = .off
        var calls = 0
        var rng: UInt64 = 0
        var injected = 0
    }

    private let state = Mutex(State())
    /// Whether any mode is set: the page allocator reads only this while injection is off.
    private let armed = Atomic(false)

    public init() {}

    public var mode: Mode {
        get { state.withLock { $0.mode } }
        set {
            state.withLock { state in
                state = State(mode: newValue, calls: 0, rng: 0, injected: state.injected)
                if case .fraction(_, let seed) = newValue { state.rng = seed | 1 }
                armed.store(newValue != .off, ordering: .relaxed)
            }
        }
    }

    /// How many allocations have been failed on purpose since the machine started.
    public var injected: Int { state.withLock { $0.injected } }

    /// The corresponding kernel function is `should_fail_alloc_page()`.
    func shouldFail() -> Bool {
        guard armed.load(ordering: .relaxed) else { return false }
        return state.withLock { state in
            let fail: Bool
            switch state.mode {
            case .off:
                return false
            case .failNth(let n):
                state.calls += 1
                fail = state.calls == n
            case .fraction(let p, _):
                // xorshift64*: cheap, seeded, the same sequence on every run.
                state.rng ^= state.rng >> 12
                state.rng ^= state.rng << 25
                state.rng ^= state.rng >> 27
                let draw = Double((state.rng &* 2_685_821_657_736_338_717) >> 11) / Double(1 << 53)
                fail = draw < p
            }
            if fail { state.injected += 1 }
            return fail
        }
    }
}

// Page-allocator fault injection, the emulated fail_page_alloc: tests make the Nth
// allocation fail, or a seeded fraction of them, and users set the kernel's debugfs
// attributes (probability, interval, times, space, verbose, min-order; see
// Documentation/fault-injection), to prove that every caller turns a failed page
// allocation into a clean error. Each page asked of the allocator counts once, whether
// it came through alloc_pages or the bulk allocator. GFP flags are not modelled, so
// neither are ignore-gfp-wait and ignore-gfp-highmem: every allocation may fail.
import Locking
import Printk
import Synchronization

public final class FaultInjection: Sendable {
    public enum Mode: Sendable, Equatable {
        /// Only the attributes (off while their probability is 0).
        case off
        /// The nth allocation from now fails (1 = the next one); the rest succeed.
        case failNth(Int)
        /// Each allocation fails with this probability, drawn from a seeded generator.
        case fraction(Double, seed: UInt64)
    }

    /// struct fault_attr's debugfs files, with fail_page_alloc's defaults (times 1,
    /// verbose 2, min-order 1: order-0 pages never fail until min-order is 0).
    public struct Attributes: Sendable, Equatable {
        /// Percent of the eligible allocations that fail; 0 turns injection off.
        public var probability: UInt64 = 0
        /// Only every interval-th eligible allocation may fail.
        public var interval: UInt64 = 1
        /// How many more failures; -1 for no limit.
        public var times: Int32 = 1
        /// Bytes allowed to succeed before any failure.
        public var space: Int32 = 0
        /// 0: silent; 1 and more: the kernel's "FAULT_INJECTION: forcing a failure." lines.
        public var verbose: UInt64 = 2
        /// Allocations below this order never fail.
        public var minOrder: UInt64 = 1

        public init() {}
    }

    private struct State {
        var mode: Mode = .off
        var calls = 0
        var rng: UInt64 = 0
        var injected = 0
        var attributes = Attributes()
        var count: UInt64 = 0
        var random: UInt64 = 0x9E37_79B9_7F4A_7C15
    }

    private let state = PthreadMutex(State())
    /// Whether a mode or a probability is set: the page allocator reads only this while
    /// injection is off.
    private let armed = Atomic(false)
    private let log: KernelLog?
    /// The attribute's debugfs name, as fail_dump() prints it.
    public let name: String

    /// fail_page_alloc by default; another name is a plain DECLARE_FAULT_ATTR() (such as
    /// mm/mempool.c's fail_mempool_alloc_bulk), which has no min-order.
    public init(name: String = "fail_page_alloc", log: KernelLog? = nil) {
        self.name = name
        self.log = log
        if name != "fail_page_alloc" { state.withLock { $0.attributes.minOrder = 0 } }
    }

    /// The corresponding kernel function is `should_fail_ex(attr, size, FAULT_NOWARN)`
    /// when `noWarn`: whether this call of `size` bytes fails.
    public func shouldFail(size: Int, noWarn: Bool) -> Bool {
        shouldFail(order: 0, size: size, noWarn: noWarn)
    }

    public var mode: Mode {
        get { state.withLock { $0.mode } }
        set {
            state.withLock { state in
                state.mode = newValue
                state.calls = 0
                state.rng = 0
                if case .fraction(_, let seed) = newValue { state.rng = seed | 1 }
                armed.store(newValue != .off || state.attributes.probability > 0, ordering: .relaxed)
            }
        }
    }

    /// The debugfs attributes (used while the mode is off); a probability above 0 arms them.
    public var attributes: Attributes {
        get { state.withLock { $0.attributes } }
        set {
            state.withLock { state in
                state.attributes = newValue
                armed.store(state.mode != .off || newValue.probability > 0, ordering: .relaxed)
            }
        }
    }

    /// How many allocations have been failed on purpose since the machine started.
    public var injected: Int { state.withLock { $0.injected } }

    /// The corresponding kernel function is `should_fail_alloc_page()`.
    @inline(__always)
    func shouldFail(order: Int = 0) -> Bool {
        armed.load(ordering: .relaxed) && shouldFail(order: order, size: PhysicalMemory.pageSize << order, noWarn: false)
    }

    private func shouldFail(order: Int, size: Int, noWarn: Bool) -> Bool {
        guard armed.load(ordering: .relaxed) else { return false }
        var report: String?
        let fail = state.withLock { state in
            let fail: Bool
            let before = state.attributes
            switch state.mode {
            case .off:
                fail = Self.shouldFailAttributes(&state, order: order, size: size)
            case .failNth(let n):
                state.calls += 1
                fail = state.calls == n
            case .fraction(let p, _):
                fail = Double(Self.next(&state.rng) >> 11) / Double(1 << 53) < p
            }
            if fail {
                state.injected += 1
                if before.verbose > 0 && !noWarn { report = failDump(before) }
            }
            return fail
        }
        if let report, let log {
            for line in report.split(separator: "\n") { log.printk(.notice, String(line)) }
        }
        return fail
    }

    /// should_fail_ex() on the attributes, its checks in the kernel's order.
    private static func shouldFailAttributes(_ state: inout State, order: Int, size: Int) -> Bool {
        let attributes = state.attributes
        guard UInt64(order) >= attributes.minOrder, attributes.probability > 0, attributes.times != 0 else { return false }
        let size = Int32(clamping: size)
        if attributes.space > size {
            state.attributes.space -= size
            return false
        }
        if attributes.interval > 1 {
            state.count += 1
            if state.count % attributes.interval != 0 { return false }
        }
        guard attributes.probability > next(&state.random) % 100 else { return false }
        // atomic_dec_not_zero(): a count below -1 (debugfs takes any int) goes on down and
        // wraps past INT_MIN, as the kernel's atomic does, instead of trapping.
        if attributes.times != -1 { state.attributes.times &-= 1 }
        return true
    }

    /// fail_dump()'s two lines, for every injected failure while verbose is on (as the
    /// kernel's per-task fail-nth prints them too), with times as it was before this
    /// failure counted. The stack that verbose 2 adds is not emulated.
    private func failDump(_ a: Attributes) -> String {
        "FAULT_INJECTION: forcing a failure.\nname \(name), interval \(a.interval), probability \(a.probability), "
            + "space \(a.space), times \(a.times)"
    }

    /// xorshift64*: cheap, seeded, the same sequence on every run.
    private static func next(_ rng: inout UInt64) -> UInt64 {
        rng ^= rng >> 12
        rng ^= rng << 25
        rng ^= rng >> 27
        return rng &* 2_685_821_657_736_338_717
    }
}

// The machine's tracing (kernel/trace/): a binary ring per CPU, preallocated when tracing
// is first enabled, as the kernel expands its buffers on first use; one mask of enabled
// events that tracing_on clears, so that a disabled event costs its caller one relaxed
// load and a branch. An enabled event is copied into the writer's CPU ring as words
// under that ring's spinlock, with no heap and no String: the text is made only when
// `trace` or `trace_pipe` is read, as the kernel formats at read time.
import Lib
import Locking
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

public final class Tracer: @unchecked Sendable {  // the rings are set up under `setup`; the mask and counters are atomics
    /// The kernel whose events and formats this machine has.
    public let kernel: KernelVersion
    /// The events `kernel` has, and each one's enable switch.
    public let events: [TraceEvent]
    @usableFromInline let enabled = Atomic<UInt64>(0)  // read inline by every module's hot path
    /// What the mask holds while tracing_on is 1.
    private let chosen = Atomic<UInt64>(0)
    private let on = Atomic<Bool>(true)
    private let hashing = Atomic<Bool>(false)
    /// buffer_size_kb, and whether the rings have their storage yet.
    private let setup = PthreadMutex((kilobytes: Tracer.defaultKilobytes, expanded: false))
    private let rings: [TraceRing]
    private let boot = monotonicNs()
    /// One table for the process, as the kernel keeps one.
    static let commands = SavedCommands()
    /// trace_pipe readers waiting for an event.
    let readers = ConditionLock()
    private let waiting = Atomic<Int>(0)

    /// trace_buf_size's 1441792 bytes per CPU in whole ring pages of 4080 bytes, as
    /// buffer_size_kb shows it: 354 pages, 1410 KiB.
    public static let defaultKilobytes = 1410

    /// `cpus` rings: as many as the CPUs the machine has (or a recording names).
    public init(kernel: KernelVersion, cpus: Int = CPU.online) {
        self.kernel = kernel
        events = TraceEvent.all(in: kernel)
        rings = (0..<max(1, cpus)).map { _ in TraceRing() }
    }

    // MARK: - The switches

    /// Whether `event` is recorded now: the one check on a hot path.
    @inlinable
    public func isEnabled(_ event: TraceEvent) -> Bool { enabled.load(ordering: .relaxed) & event.bit != 0 }

    public func isChosen(_ event: TraceEvent) -> Bool { chosen.load(ordering: .relaxed) & event.bit != 0 }

    /// events/.../enable: switches the events given; the buffers are made on first use.
    public func enable(_ events: [TraceEvent], _ on: Bool) {
        if on { expand() }
        var mask: UInt64 = 0
        for event in events where self.events.contains(event) { mask |= event.bit }
        let now = on ? chosen.bitwiseOr(mask, ordering: .relaxed).newValue : chosen.bitwiseAnd(~mask, ordering: .relaxed).newValue
        enabled.store(self.on.load(ordering: .relaxed) ? now : 0, ordering: .relaxed)
    }

    /// tracing_on.
    public var tracingOn: Bool {
        get { on.load(ordering: .relaxed) }
        set {
            on.store(newValue, ordering: .relaxed)
            enabled.store(newValue ? chosen.load(ordering: .relaxed) : 0, ordering: .relaxed)
        }
    }

    /// options/hash-ptr: %p prints a hash of the pointer, as the kernel's default does.
    /// dmaemu starts with it off, as after `echo 0 > options/hash-ptr`, so that addresses
    /// can be followed from one event to the next.
    public var hashPointers: Bool {
        get { hashing.load(ordering: .relaxed) }
        set { hashing.store(newValue, ordering: .relaxed) }
    }

    /// buffer_size_kb: per CPU. Setting it remakes the rings (their records go).
    public var kilobytesPerCPU: Int {
        get { setup.withLock { $0.kilobytes } }
        set {
            setup.withLock { setup in
                setup.kilobytes = newValue
                if setup.expanded { for ring in rings { ring.resize(words: newValue * 1024 / 8) } }
            }
        }
    }

    private func expand() {
        setup.withLock { setup in
            guard !setup.expanded else { return }
            setup.expanded = true
            for ring in rings { ring.resize(words: setup.kilobytes * 1024 / 8) }
        }
    }

    // MARK: - Recording

    /// What a replaying thread records its events as: the recorded task's pid, the
    /// recorded time and context (its 5 characters, packed by flagsWord); the CPU comes
    /// from CPU.acting(as:).
    public struct Context: Sendable {
        public var pid: Int32
        public var nanoseconds: UInt64
        public var flags: UInt64
        public init(pid: Int32, nanoseconds: UInt64, flags: UInt64) {
            self.pid = pid
            self.nanoseconds = nanoseconds
            self.flags = flags
        }
    }

    private static let replayed = ThreadWord()

    /// Names a replayed task, as the recording's lines name it (saved_cmdlines).
    public static func nameTask(_ pid: Int32, _ comm: String) { commands.set(pid, comm) }

    /// Runs `body` with this thread's events recorded as `context` says.
    public static func replaying<R, E: Error>(as context: UnsafePointer<Context>, _ body: () throws(E) -> R) throws(E) -> R {
        try replayed.with(UnsafeRawPointer(context), body)
    }

    /// Records `event` of `device` with `payload` words that `fill` writes: the header
    /// word (length, event, pid), the timestamp, the context flags, the device's name,
    /// then the payload. Call only when isEnabled(event).
    @inline(__always)
    public func record(_ event: TraceEvent, _ device: TraceName, payload: Int, _ fill: (UnsafeMutablePointer<UInt64>) -> Void) {
        let count = 3 + device.recordWords + payload
        let pid: UInt64, time: UInt64?, flags: UInt64
        if let replay = Self.replayed.value {
            let context = replay.assumingMemoryBound(to: Context.self).pointee
            (pid, time, flags) = (UInt64(UInt32(bitPattern: context.pid)), context.nanoseconds, context.flags)
        } else {
            (pid, time, flags) = (UInt64(UInt32(bitPattern: threadID())), nil, 0)
        }
        _ = rings[CPU.current % rings.count].write(count: count) { [boot] record in
            record[0] = UInt64(count) | UInt64(event.rawValue) << 16 | pid << 32
            // Read under the ring's lock: two threads on one CPU still write it in time order,
            // as the kernel's reservation with preemption off does.
            record[1] = time ?? monotonicNs() &- boot
            record[2] = flags
            device.write(to: record + 3)
            fill(record + 3 + device.recordWords)
        }
        if waiting.load(ordering: .relaxed) > 0 { readers.broadcast() }
    }

    /// gettid(), kept per thread: the kernel's pid of the task. The first event of a
    /// thread also saves its comm (tracing_record_cmdline()).
    private static let tid = ThreadWord()

    @inline(__always)
    func threadID() -> Int32 {
        if let saved = Self.tid.value { return Int32(Int(bitPattern: saved)) }
        let tid = gettid_()
        Self.tid.value = UnsafeRawPointer(bitPattern: Int(tid))
        Self.commands.save(tid)
        return tid
    }

    // MARK: - Reading

    /// One record as read back: its CPU, and its words.
    public struct Entry: Sendable {
        public let cpu: Int
        public let words: [UInt64]
        public var event: TraceEvent? { TraceEvent(rawValue: Int(words[0] >> 16 & 0xffff)) }
        public var pid: Int32 { Int32(bitPattern: UInt32(truncatingIfNeeded: words[0] >> 32)) }
        public var nanoseconds: UInt64 { words[1] }
        public var flags: UInt64 { words[2] }
    }

    /// Every record, oldest first across CPUs (merged by timestamp, as the kernel's
    /// iterator does); `consume` takes them out (trace_pipe).
    public func entries(consume: Bool = false) -> [Entry] {
        var perCPU = rings.map { $0.records(consume: consume) }
        var next = [Int](repeating: 0, count: perCPU.count)
        var merged: [Entry] = []
        merged.reserveCapacity(perCPU.reduce(0) { $0 + $1.count })
        while true {
            var best = -1
            for cpu in perCPU.indices where next[cpu] < perCPU[cpu].count {
                if best < 0 || perCPU[cpu][next[cpu]][1] < perCPU[best][next[best]][1] { best = cpu }
            }
            guard best >= 0 else { break }
            merged.append(Entry(cpu: best, words: perCPU[best][next[best]]))
            next[best] += 1
        }
        perCPU.removeAll()
        return merged
    }

    /// entries-in-buffer and entries-written, summed over the CPUs.
    public var counts: (inBuffer: Int, written: Int) {
        rings.reduce((0, 0)) { sum, ring in
            let c = ring.counters
            return (sum.0 + c.entries, sum.1 + c.written)
        }
    }

    /// Writing or truncating `trace`.
    public func clear() { rings.forEach { $0.clear() } }

    /// trace_pipe: the next events, consumed; waits for one while there is none, unless
    /// `nonBlocking` (then nil) or `stop()` says it should give up (then empty).
    public func consume(nonBlocking: Bool, stop: () -> Bool) -> [Entry]? {
        while true {
            let got = entries(consume: true)
            if !got.isEmpty { return got }
            if nonBlocking { return nil }
            if stop() { return [] }
            waiting.wrappingAdd(1, ordering: .relaxed)
            readers.lock()
            readers.wait(milliseconds: 100)
            readers.unlock()
            waiting.wrappingSubtract(1, ordering: .relaxed)
        }
    }

    /// The machine's CPUs, as the header's #P shows them.
    public var cpus: Int { rings.count }
}

// GNU extensions the Glibc module does not export.
@_silgen_name("pthread_getname_np")
private func pthread_getname_np_(_ thread: pthread_t, _ name: UnsafeMutablePointer<UInt8>, _ length: Int) -> Int32
@_silgen_name("gettid")
private func gettid_() -> Int32

/// The kernel's saved_cmdlines: the comm of each pid that recorded an event, saved the
/// first time (a thread's name changes seldom), so the text can name it at read time.
final class SavedCommands: Sendable {
    private let names = PthreadMutex<[Int32: String]>([:])

    /// The calling thread's comm under `tid`.
    func save(_ tid: Int32) {
        var comm = [UInt8](repeating: 0, count: 16)
        _ = pthread_getname_np_(pthread_self(), &comm, comm.count)
        let name = String(decoding: comm.prefix { $0 != 0 }, as: UTF8.self)
        names.withLock { $0[tid] = name }
    }

    /// A replayed task's comm.
    func set(_ pid: Int32, _ name: String) { names.withLock { $0[pid] = name } }

    /// "<...>" when the pid is unknown, as trace_find_cmdline() prints it.
    func name(_ pid: Int32) -> String { pid == 0 ? "<idle>" : names.withLock { $0[pid] } ?? "<...>" }
}

// raw_smp_processor_id(): the CPU the caller runs on, which picks its swiotlb area and its
// trace buffer. A thread replaying a recording acts as the CPU each recorded event ran
// on (`CPU.acting(as:)`), so the kernel's per-CPU choices are replayed too.
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

// sched_getcpu() is a GNU extension the Glibc module does not export; its C signature
// int(void) is called the same way under Swift's convention on the platforms we run on.
@_silgen_name("sched_getcpu")
private func sched_getcpu_() -> Int32

public enum CPU {
    /// The CPU the thread acts as, plus one.
    private static let acting = ThreadWord()
    /// Threads acting as a CPU now: while there are none, `current` reads no thread word
    /// (the page allocator asks on every allocation and free).
    private static let actors = Atomic<Int>(0)

    /// The calling thread's CPU, or the one it acts as.
    @inline(__always)
    public static var current: Int {
        if actors.load(ordering: .relaxed) != 0, let cpu = acting.value { return Int(bitPattern: cpu) - 1 }
        return running
    }

    /// Where the thread's rseq area keeps cpu_id, from the thread pointer (0: not known
    /// yet; -1: no rseq, ask sched_getcpu()).
    private static let rseqCPUOffset = Atomic<Int>(0)

    /// The CPU the thread runs on. glibc (2.35+) registers an rseq area for every thread,
    /// in which the kernel keeps the thread's cpu_id current; reading it is a load, where
    /// sched_getcpu() costs a call of about 10 ns here, and the page allocator asks on
    /// every allocation and free. On x86-64 pthread_self() is the thread pointer.
    @inline(__always)
    static var running: Int {
        var offset = rseqCPUOffset.load(ordering: .relaxed)
        if offset == 0 { offset = findRSEQ() }
        #if arch(x86_64)
        if offset > 0, let thread = UnsafeRawPointer(bitPattern: UInt(pthread_self())) {
            let cpu = thread.load(fromByteOffset: offset, as: Int32.self)
            if cpu >= 0 { return Int(cpu) }
        }
        #endif
        return Int(max(sched_getcpu_(), 0))
    }

    /// __rseq_offset + offsetof(struct rseq, cpu_id), when glibc registered rseq
    /// (__rseq_size is 0 when it did not, as under glibc.pthread.rseq=0).
    @inline(never)
    private static func findRSEQ() -> Int {
        var offset = -1
        if let size = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "__rseq_size"), size.load(as: UInt32.self) >= 8,
           let base = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "__rseq_offset") {
            offset = base.load(as: Int.self) + 4
        }
        rseqCPUOffset.store(offset, ordering: .relaxed)
        return offset
    }

    /// Runs `body` with the calling thread taken for CPU `cpu`.
    public static func acting<R, E: Error>(as cpu: Int, _ body: () throws(E) -> R) throws(E) -> R {
        actors.add(1, ordering: .relaxed)
        defer { actors.subtract(1, ordering: .relaxed) }
        return try acting.with(UnsafeRawPointer(bitPattern: cpu + 1), body)
    }

    /// The CPUs online (num_online_cpus()).
    public static let online = max(1, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))))
}

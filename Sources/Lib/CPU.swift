// raw_smp_processor_id(): the CPU the caller runs on, which picks its swiotlb area and its
// trace buffer. A thread replaying a recording acts as the CPU each recorded event ran
// on (`CPU.acting(as:)`), so the kernel's per-CPU choices are replayed too.
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

    /// The calling thread's CPU, or the one it acts as.
    @inline(__always)
    public static var current: Int {
        if let cpu = acting.value { return Int(bitPattern: cpu) - 1 }
        return Int(max(sched_getcpu_(), 0))
    }

    /// Runs `body` with the calling thread taken for CPU `cpu`.
    public static func acting<R, E: Error>(as cpu: Int, _ body: () throws(E) -> R) throws(E) -> R {
        try acting.with(UnsafeRawPointer(bitPattern: cpu + 1), body)
    }

    /// The CPUs online (num_online_cpus()).
    public static let online = max(1, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))))
}

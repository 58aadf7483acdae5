// raw_smp_processor_id(): which CPU the caller runs on, to pick its starting area.
// sched_getcpu() is a GNU extension the Glibc module does not export; its C signature
// int(void) is called the same way under Swift's convention on the platforms we run on.
@_silgen_name("sched_getcpu")
private func sched_getcpu_() -> Int32

func currentCPU() -> Int { Int(max(sched_getcpu_(), 0)) }

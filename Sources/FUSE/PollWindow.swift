// How long the FUSE reader keeps polling /dev/fuse after a request before it sleeps: KVM's
// halt-polling rule (virt/kvm/kvm_main.c, halt_poll_ns) applied to a request loop. A
// sleeping reader costs every request a wake-up of its thread, which on this 2-core VM is
// most of a round trip; a polling one costs CPU. So the window grows while requests come
// back within the maximum (cat's open, read, read, release), and shrinks when the wait
// was longer than polling could ever have covered (a shell typing one command a second).
struct PollWindow {
    /// The first window after a short sleep (halt_poll_ns_grow_start's 10 us).
    static let growStart: UInt64 = 10_000

    /// The longest poll (halt_poll_ns); 0 never polls.
    let maximum: UInt64
    /// Nanoseconds to poll before sleeping; 0 sleeps at once.
    private(set) var nanoseconds: UInt64 = 0

    init(maximum: UInt64) { self.maximum = maximum }

    /// A request arrived `waited` ns after the reader began to wait for it; `slept` says
    /// whether it slept for it (the window had run out).
    mutating func arrived(after waited: UInt64, slept: Bool) {
        guard slept, maximum > 0 else { return }  // caught while polling: the window is right
        if waited <= maximum {
            // A longer poll would have caught it without the wake-up.
            nanoseconds = min(nanoseconds == 0 ? Self.growStart : nanoseconds * 2, maximum)
        } else {
            // Idle between requests: polling was wasted; halve, and stop below the start.
            nanoseconds /= 2
            if nanoseconds < Self.growStart { nanoseconds = 0 }
        }
    }
}

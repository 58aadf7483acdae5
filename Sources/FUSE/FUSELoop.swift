// The request loop, multi-threaded on libfuse's receive and process calls. libfuse 3.14's
// own loop parks every idle worker in read(/dev/fuse) and the kernel hands each request to
// the one that has waited longest, so every request pays the wake-up of a sleeping thread.
// On this 2-core VM that wake-up is most of a round trip: the loop measured the same as
// fuse_hello.c, and a single sleeping reader (-s) twice as slow. Here one worker at a time
// is the reader (leader/follower): it serves what it reads itself, then polls /dev/fuse
// for a short adaptive window (PollWindow) before it sleeps, so back-to-back requests find
// it awake. The thread that called run() is a watchdog: when one request has run for a
// whole tick (a store that sleeps on a mempool, I/O, a remove draining its queue), it
// gives the reader's place to another worker, so a slow request never holds up the rest.
import CFuse3
import Glibc
import Locking
import Synchronization

final class FUSELoop: @unchecked Sendable {  // `state` under `lock`; the rest atomics or set in init
    /// A request that has run this long gets another worker reading beside it.
    static let tick = timespec(tv_sec: 0, tv_nsec: 1_000_000)
    /// Workers at most (libfuse 3.14's default max_threads).
    static let maxWorkers = 10
    /// Ticks without a request before the watchdog sleeps until the next one.
    static let quietTicks = 100
    /// How long run() waits at the end for requests still being served.
    static let drainSeconds = 5

    private let session: OpaquePointer
    private let fd: Int32
    /// Written once when the loop ends: every poll(2) on it wakes. Never read.
    private let exitPipe: (read: Int32, write: Int32)
    /// Wakes the watchdog from its quiet sleep.
    private let watchdogPipe: (read: Int32, write: Int32)

    private struct State {
        var readerTaken = false
        var workers = 0
        var idle = 0
        var exiting = false
    }
    private let lock = ConditionLock()
    private var state = State()
    /// The reader's role, owned by whoever holds it (no lock on the request path).
    private var window: PollWindow

    /// The request the reader is serving (its number in `requests`; 0: none), for the
    /// watchdog; the reader and the watchdog settle who owns the role with one
    /// compare-and-exchange on it.
    private let serving = Atomic<UInt64>(0)
    private let watchdogAsleep = Atomic(false)
    /// Requests read; of them, those that came while the reader polled and those it
    /// slept for (the rest were queued already); slow requests that had the place handed on.
    let requests = Atomic<UInt64>(0)
    let polled = Atomic<UInt64>(0)
    let wakeups = Atomic<UInt64>(0)
    let handoffs = Atomic<UInt64>(0)

    init(session: OpaquePointer, maximumPoll: UInt64) {
        self.session = session
        window = PollWindow(maximum: maximumPoll)
        fd = fuse_session_fd(session)
        _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
        exitPipe = Self.makePipe()
        watchdogPipe = Self.makePipe()
    }

    deinit {
        for fd in [exitPipe.read, exitPipe.write, watchdogPipe.read, watchdogPipe.write] { close(fd) }
    }

    private static func makePipe() -> (read: Int32, write: Int32) {
        var fds: [Int32] = [-1, -1]
        pipe2(&fds, O_NONBLOCK | O_CLOEXEC)
        return (fds[0], fds[1])
    }

    /// Ends the loop from any thread (also what a signal's fuse_session_exit leads to).
    func stop() {
        fuse_session_exit(session)
        var byte: UInt8 = 0
        _ = write(exitPipe.write, &byte, 1)
    }

    /// Serves until the session ends; the calling thread is the watchdog. Returns 0, or -1
    /// if no worker could be started or a request was still running after drainSeconds
    /// (the session must then be left alone: that worker will still reply through it).
    func run() -> Int32 {
        lock.lock()
        spawnWorker()
        let started = state.workers > 0
        lock.unlock()
        if started { watch() }
        stop()
        lock.lock()
        defer { lock.unlock() }
        state.exiting = true
        lock.broadcast()
        let deadline = Self.now() + UInt64(Self.drainSeconds) * 1_000_000_000
        while state.workers > 0, Self.now() < deadline { lock.wait(seconds: 1) }
        return started && state.workers == 0 ? 0 : -1
    }

    // MARK: The watchdog

    private func watch() {
        // Signals stay blocked here but inside ppoll(2), so one that ends the session
        // (libfuse's handlers call fuse_session_exit) cannot slip in between the check of
        // the flag and the sleep.
        var signals = sigset_t(), open = sigset_t()
        sigemptyset(&signals)
        for signal in [SIGTERM, SIGINT, SIGHUP] { sigaddset(&signals, signal) }
        pthread_sigmask(SIG_BLOCK, &signals, &open)
        for signal in [SIGTERM, SIGINT, SIGHUP] { sigdelset(&open, signal) }
        defer { pthread_sigmask(SIG_SETMASK, &open, nil) }

        var lastServing: UInt64 = 0, lastRequests: UInt64 = 0, quiet = 0
        var fds = (pollfd(fd: exitPipe.read, events: Int16(POLLIN), revents: 0),
                   pollfd(fd: watchdogPipe.read, events: Int16(POLLIN), revents: 0))
        while fuse_session_exited(session) == 0 {
            if quiet >= Self.quietTicks {
                // Nothing for a while: sleep until a reader says a request came in.
                watchdogAsleep.store(true, ordering: .sequentiallyConsistent)
                if requests.load(ordering: .sequentiallyConsistent) == lastRequests {
                    Self.wait(&fds, 2, timeout: nil, signals: &open)
                }
                watchdogAsleep.store(false, ordering: .sequentiallyConsistent)
                var drain = (UInt64(0), UInt64(0))
                _ = Glibc.read(watchdogPipe.read, &drain, MemoryLayout.size(ofValue: drain))
                quiet = 0
            } else {
                Self.wait(&fds, 1, timeout: Self.tick, signals: &open)
            }
            let now = serving.load(ordering: .sequentiallyConsistent)
            if now != 0, now == lastServing { handOff(now) }
            lastServing = now
            let count = requests.load(ordering: .relaxed)
            quiet = count == lastRequests && now == 0 ? quiet + 1 : 0
            lastRequests = count
        }
    }

    /// Takes the reader's place from the worker serving `ticket`, if it still is, and gives
    /// it to an idle worker or a new one. With every worker busy the slow one keeps it.
    private func handOff(_ ticket: UInt64) {
        lock.lock()
        defer { lock.unlock() }
        guard state.idle > 0 || state.workers < Self.maxWorkers,
              serving.compareExchange(expected: ticket, desired: 0, ordering: .sequentiallyConsistent).exchanged
        else { return }
        state.readerTaken = false
        handoffs.add(1, ordering: .relaxed)
        if state.idle > 0 { lock.signal() } else { spawnWorker() }
    }

    // MARK: Workers

    /// With the lock held. Workers start with every signal blocked, as libfuse's do: the
    /// watchdog is the thread that takes them.
    private func spawnWorker() {
        var all = sigset_t(), previous = sigset_t()
        sigfillset(&all)
        pthread_sigmask(SIG_SETMASK, &all, &previous)
        defer { pthread_sigmask(SIG_SETMASK, &previous, nil) }
        var attributes = pthread_attr_t()
        pthread_attr_init(&attributes)
        pthread_attr_setdetachstate(&attributes, Int32(PTHREAD_CREATE_DETACHED))
        defer { pthread_attr_destroy(&attributes) }
        var thread = pthread_t()
        let me = Unmanaged.passRetained(self).toOpaque()
        let created = pthread_create(&thread, &attributes, { raw in
            let loop = Unmanaged<FUSELoop>.fromOpaque(raw!).takeRetainedValue()
            loop.work()
            return nil
        }, me)
        if created == 0 {
            state.workers += 1
        } else {
            Unmanaged<FUSELoop>.fromOpaque(me).release()
        }
    }

    private func work() {
        var buffer = fuse_buf()
        defer { free(buffer.mem) }
        lock.lock()
        while !state.exiting {
            if state.readerTaken {
                state.idle += 1
                lock.wait()
                state.idle -= 1
                continue
            }
            state.readerTaken = true
            lock.unlock()
            let ended = !read(into: &buffer)
            lock.lock()
            if ended {
                state.exiting = true
                lock.broadcast()
            }
        }
        state.workers -= 1
        lock.broadcast()  // run() waits for the last one
        lock.unlock()
    }

    /// As the reader: serves requests until the watchdog hands the role on (true) or the
    /// session ends (false).
    private func read(into buffer: inout fuse_buf) -> Bool {
        while receive(&buffer) {
            let ticket = requests.add(1, ordering: .sequentiallyConsistent).newValue
            serving.store(ticket, ordering: .sequentiallyConsistent)
            if watchdogAsleep.load(ordering: .sequentiallyConsistent), watchdogAsleep.exchange(false, ordering: .sequentiallyConsistent) {
                var byte: UInt8 = 0
                _ = write(watchdogPipe.write, &byte, 1)
            }
            fuse_session_process_buf(session, &buffer)
            guard serving.compareExchange(expected: ticket, desired: 0, ordering: .sequentiallyConsistent).exchanged else {
                return true  // the watchdog gave the role to another worker meanwhile
            }
        }
        stop()
        return false
    }

    /// The next request into `buffer`: /dev/fuse is read without blocking for the poll
    /// window, then the reader sleeps in poll(2) beside the exit pipe. False when the
    /// session has ended (exit asked, or the file system unmounted: ENODEV).
    private func receive(_ buffer: inout fuse_buf) -> Bool {
        let start = Self.now()
        var slept = false, polling = false
        var fds = (pollfd(fd: fd, events: Int16(POLLIN), revents: 0),
                   pollfd(fd: exitPipe.read, events: Int16(POLLIN), revents: 0))
        while fuse_session_exited(session) == 0 {
            let result = fuse_session_receive_buf(session, &buffer)
            if result > 0 {
                if slept { wakeups.add(1, ordering: .relaxed) } else if polling { polled.add(1, ordering: .relaxed) }
                window.arrived(after: Self.now() - start, slept: slept)
                return true
            }
            // 0: the session ended (exit asked, or ENODEV: unmounted); EINTR: go round;
            // any other error ends the loop, as it ends libfuse's.
            if result == 0 { return false }
            if result != -EAGAIN, result != -EINTR { return false }
            if !slept, Self.now() - start < window.nanoseconds {
                polling = true
                continue
            }
            slept = true
            Self.wait(&fds, 2, timeout: nil, signals: nil)
            if fds.1.revents != 0 { return false }
        }
        return false
    }

    /// ppoll(2) on the first `count` of two descriptors (on the stack: no heap per wait),
    /// with `signals` as the mask while it sleeps (nil: the thread's own).
    private static func wait(_ fds: inout (pollfd, pollfd), _ count: Int, timeout: timespec?, signals: UnsafePointer<sigset_t>?) {
        withUnsafeMutableBytes(of: &fds) { fds in
            let first = fds.baseAddress!.assumingMemoryBound(to: pollfd.self)
            if var timeout { _ = ppoll(first, nfds_t(count), &timeout, signals) } else { _ = ppoll(first, nfds_t(count), nil, signals) }
        }
    }

    @inline(__always) private static func now() -> UInt64 {
        var time = timespec()
        clock_gettime(CLOCK_MONOTONIC, &time)
        return UInt64(time.tv_sec) &* 1_000_000_000 &+ UInt64(time.tv_nsec)
    }
}

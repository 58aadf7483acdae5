// A ControlFS tree served through libfuse3's low-level API. Attributes open with
// direct_io, so every read(2) sees the snapshot taken at open and every write(2) reaches
// its store, as with sysfs; entries and attributes are cached by the kernel for a second
// and invalidated when the tree changes. Requests run on FUSELoop's worker threads and find
// the server through the session's userdata, never through globals.
import CFuse3
import ControlFS
import Dispatch
import Glibc
import Synchronization
import SystemPackage

public enum FUSEError: Error, Equatable, CustomStringConvertible {
    case mountpointMissing(String)
    case mountpointBusy(String)
    case sessionFailed
    case mountFailed(String)

    public var description: String {
        switch self {
        case .mountpointMissing(let path): "mountpoint \(path) does not exist or is not a directory"
        case .mountpointBusy(let path): "mountpoint \(path) is already mounted"
        case .sessionFailed: "fuse_session_new failed"
        case .mountFailed(let path): "cannot mount at \(path) (is /dev/fuse available?)"
        }
    }
}

public struct MountOptions: Sendable {
    /// allow_other: users other than the one that mounted may use the tree.
    public var allowOther = false
    /// Install libfuse's handlers so SIGTERM, SIGINT and SIGHUP end the loop (the daemon
    /// does; tests running a server inside the test process do not).
    public var signalHandlers = true

    /// The longest the reader polls /dev/fuse between requests before it sleeps, in
    /// microseconds (PollWindow); 0 never polls. Beyond 50 us a wake-up on this VM costs
    /// less than the CPU the poll burns.
    public var pollMicroseconds: UInt64
    public static let defaultPollMicroseconds: UInt64 = 50
    public static let pollMicrosecondsRange: ClosedRange<UInt64> = 0...10_000

    public init(allowOther: Bool = false, signalHandlers: Bool = true, pollMicroseconds: UInt64 = Self.defaultPollMicroseconds) {
        self.allowOther = allowOther
        self.signalHandlers = signalHandlers
        self.pollMicroseconds = pollMicroseconds
    }
}

public struct LoopStatistics: Sendable {
    public var requests: UInt64 = 0
    public var polled: UInt64 = 0
    public var wakeups: UInt64 = 0
    public var handoffs: UInt64 = 0
}

public final class FUSEServer: @unchecked Sendable {  // set once at mount, before any request
    public let root: ControlDirectory
    public let mountpoint: String
    let inodes: InodeTable
    let handles = HandleTable()
    /// Attribute times: when the tree was mounted, as sysfs shows boot time.
    let mountTime = timespec(tv_sec: time(nil), tv_nsec: 0)
    private var session: OpaquePointer?
    private let invalidations = DispatchQueue(label: "dmaemu.fuse.invalidate")
    private var loop: FUSELoop?
    private var fusermount: Fusermount?
    private var signalHandlers = false
    private let stopping = Atomic(false)

    public init(root: ControlDirectory, mountpoint: String) {
        self.root = root
        self.mountpoint = mountpoint
        inodes = InodeTable(root: root)
    }

    /// Mounts the tree: clears a stale mount left by a killed daemon ("transport endpoint
    /// is not connected"), refuses a missing or busy mountpoint, then has fusermount3 mount
    /// it (Fusermount) and libfuse serve the device it sent.
    public func mount(_ options: MountOptions = MountOptions()) throws(FUSEError) {
        try Self.prepareMountpoint(mountpoint)
        // auto_unmount: fusermount3 stays beside us and unmounts when we die, even by SIGKILL.
        var flags = "fsname=dmaemu,subtype=dmaemu,default_permissions,auto_unmount"
        if options.allowOther { flags += ",allow_other" }
        var argv: [UnsafeMutablePointer<CChar>?] = [strdup("dmaemud"), nil]
        defer { free(argv[0]) }
        var ops = Self.operations()
        let userdata = Unmanaged.passUnretained(self).toOpaque()
        let made = argv.withUnsafeMutableBufferPointer { argv in
            var args = fuse_args(argc: 1, argv: argv.baseAddress, allocated: 0)
            defer { fuse_opt_free_args(&args) }
            return fuse_session_new(&args, &ops, MemoryLayout<fuse_lowlevel_ops>.size, userdata)
        }
        guard let session = made else { throw .sessionFailed }
        guard let mounted = Fusermount.mount(mountpoint, options: flags) else {
            fuse_session_destroy(session)
            throw .mountFailed(mountpoint)
        }
        // "/dev/fd/N": libfuse serves a device mounted for it, and takes the fd.
        guard fuse_session_mount(session, "/dev/fd/\(mounted.device)") == 0 else {
            mounted.unmount(mountpoint)
            close(mounted.device)
            mounted.release()
            fuse_session_destroy(session)
            throw .mountFailed(mountpoint)
        }
        self.session = session
        fusermount = mounted
        signalHandlers = options.signalHandlers && fuse_set_signal_handlers(session) == 0
        loop = FUSELoop(session: session, maximumPoll: options.pollMicroseconds * 1000)
        root.setObserver(Invalidator(server: self))
    }

    /// Serves requests on worker threads (FUSELoop) until a signal or `stop()`; then
    /// unmounts and tears the session down. Returns 0 on a clean end.
    @discardableResult
    public func run() -> Int32 {
        guard let session, let loop, let fusermount else { return -1 }
        let result = loop.run()
        root.setObserver(nil)
        fusermount.unmount(mountpoint)
        if signalHandlers { fuse_remove_signal_handlers(session) }
        // A request still running past the drain would reply through a destroyed session;
        // the process is on its way out then, so the session (and fusermount3) is left to it.
        if result == 0 {
            fuse_session_destroy(session)
            fusermount.release()
        }
        self.session = nil
        return result
    }

    /// Whether the loop is ending: a request that waits (a stream's read) gives up.
    var isStopping: Bool { stopping.load(ordering: .relaxed) || session.map { fuse_session_exited($0) != 0 } ?? true }

    /// Ends the loop from another thread.
    public func stop() {
        guard !stopping.exchange(true, ordering: .relaxed) else { return }
        loop?.stop()
    }

    /// What the loop has done: requests read, those that came while the reader polled,
    /// those it had to be woken for, and slow ones that had the reader's place handed on.
    public var loopStatistics: LoopStatistics {
        guard let loop else { return LoopStatistics() }
        return LoopStatistics(
            requests: loop.requests.load(ordering: .relaxed), polled: loop.polled.load(ordering: .relaxed),
            wakeups: loop.wakeups.load(ordering: .relaxed), handoffs: loop.handoffs.load(ordering: .relaxed))
    }

    static func prepareMountpoint(_ path: String) throws(FUSEError) {
        var info = stat()
        if stat(path, &info) != 0 {
            guard errno == ENOTCONN else { throw .mountpointMissing(path) }
            // A daemon killed with its mount in place (auto_unmount normally clears it):
            // detach the dead mount and go on; fusermount3 does it for a user who is not root.
            if umount2(path, Int32(MNT_DETACH)) != 0 { runFusermount(["-u", "-z", path]) }
            guard stat(path, &info) == 0 else { throw .mountpointMissing(path) }
        }
        guard info.st_mode & S_IFMT == S_IFDIR else { throw .mountpointMissing(path) }
        var parent = stat()
        if stat(path + "/..", &parent) == 0, parent.st_dev != info.st_dev, isFUSEMount(path) {
            throw .mountpointBusy(path)
        }
    }

    /// fusermount3 (setuid root, from the fuse3 package) with `arguments`, waited for.
    static func runFusermount(_ arguments: [String]) {
        let argv = (["fusermount3"] + arguments).map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        var pid: pid_t = 0
        guard posix_spawnp(&pid, "fusermount3", nil, nil, argv, environ) == 0 else { return }
        var status: Int32 = 0
        waitpid(pid, &status, 0)
    }

    /// Whether /proc/self/mounts lists a FUSE file system at `path`.
    static func isFUSEMount(_ path: String) -> Bool {
        guard let file = fopen("/proc/self/mounts", "r") else { return false }
        defer { fclose(file) }
        var line: UnsafeMutablePointer<CChar>?
        var capacity = 0
        defer { free(line) }
        while getline(&line, &capacity, file) > 0 {
            let fields = String(cString: line!).split(separator: " ")
            if fields.count > 2, fields[1] == path, fields[2].hasPrefix("fuse") { return true }
        }
        return false
    }

    /// A change under `directory`: drop the kernel's cached entry and listing, from a
    /// queue of our own, since notifying from inside a request can deadlock.
    func invalidate(_ directory: ControlDirectory, _ name: String) {
        guard let parent = inodes.number(of: directory) else { return }
        invalidations.async { [self] in
            guard let session, !stopping.load(ordering: .relaxed) else { return }
            _ = fuse_lowlevel_notify_inval_entry(session, parent, name, name.utf8.count)
            _ = fuse_lowlevel_notify_inval_inode(session, parent, 0, 0)
        }
    }

    /// Inodes the kernel currently holds (for tests).
    package var knownInodes: Int { inodes.count }
}

private final class Invalidator: ControlObserver {
    unowned let server: FUSEServer
    init(server: FUSEServer) { self.server = server }
    func childrenChanged(_ directory: ControlDirectory, name: String) { server.invalidate(directory, name) }
}

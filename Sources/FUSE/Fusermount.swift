// The mount, made by fusermount3 as libfuse's fuse_mount_fusermount() makes it with
// auto_unmount, but with its two fds chosen by us; libfuse is then handed the device as
// /dev/fd/N.
//
// fusermount3 stays beside us and unmounts when its socket to us closes, but only if
// opening the mountpoint then fails with ENOTCONN (should_auto_unmount() in
// util/fusermount.c). A dying process drops its fds in ascending order (close_files(),
// fs/file.c), but each file's release is a task_work run newest first (task_work_run()
// keeps no FIFO order since v5.18), so the higher fd is released first. libfuse leaves its
// socket just above /dev/fuse: fusermount3 was told while the connection lived, its open()
// was aborted (ECONNABORTED) and the dead mount stayed, 2 of 20 kill -9s with a writer in
// flight on the loaded 2-core VM. Here the socket is below the device, so the connection
// is aborted first. Finding libfuse's socket after its mount instead (the fds new since)
// broke in a process whose other threads open sockets meanwhile (a test run's Process
// spawns), and fusermount3, forked by libfuse, inherited every fd the process had open.
import CFuse3  // sys/mount.h: MNT_DETACH
import Glibc

@_silgen_name("posix_spawn_file_actions_addclosefrom_np")
private func posix_spawn_file_actions_addclosefrom_np(_ actions: UnsafeMutablePointer<posix_spawn_file_actions_t>, _ from: Int32) -> Int32

struct Fusermount {
    /// /dev/fuse, the session's; always above `socket`.
    let device: Int32
    /// Our end of fusermount3's socket: when it closes (we exit, or `release()`),
    /// fusermount3 unmounts a connection that is gone, and exits.
    let socket: Int32
    let helper: pid_t

    /// fusermount3's fd for the socket, named in its _FUSE_COMMFD.
    private static let commfd: Int32 = 3

    /// fusermount3 -o `options` -- `mountpoint`, holding only stdio and its socket; nil when
    /// it fails (it says why on stderr, as under libfuse).
    static func mount(_ mountpoint: String, options: String) -> Fusermount? {
        var pair: [Int32] = [-1, -1]
        guard socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &pair) == 0 else { return nil }
        let ours = pair[0]
        var theirs = pair[1]
        // dup2 onto itself would leave the close-on-exec flag set.
        if theirs == commfd {
            theirs = fcntl(theirs, F_DUPFD_CLOEXEC, commfd + 1)
            close(commfd)
        }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, theirs, commfd)
        _ = posix_spawn_file_actions_addclosefrom_np(&actions, commfd + 1)
        let words: [String] = ["fusermount3", "-o", options, "--", mountpoint]
        let argv = words.map { (word: String) in strdup(word) } + [nil]
        var environment = [String]()
        for entry in UnsafeBufferPointer(start: environ, count: Int.max) {
            guard let entry else { break }
            let text = String(cString: entry)
            if !text.hasPrefix("_FUSE_COMMFD=") { environment.append(text) }
        }
        environment.append("_FUSE_COMMFD=\(commfd)")
        let envp = environment.map { (entry: String) in strdup(entry) } + [nil]
        defer { (argv + envp).forEach { free($0) } }
        var pid: pid_t = 0
        let spawned = posix_spawnp(&pid, "fusermount3", &actions, nil, argv, envp)
        close(theirs)
        guard spawned == 0 else {
            close(ours)
            return nil
        }
        let received = receiveDescriptor(ours)
        guard received >= 0 else {
            close(ours)
            var status: Int32 = 0
            waitpid(pid, &status, 0)
            return nil
        }
        var device = received
        if device < ours {
            // Another thread closed an fd below ours meanwhile; the device goes above.
            device = fcntl(received, F_DUPFD_CLOEXEC, ours + 1)
            close(received)
        }
        return Fusermount(device: device, socket: ours, helper: pid)
    }

    /// The fd fusermount3 sends with its one byte (send_fd() in util/fusermount.c), or -1
    /// at EOF: fusermount3 failed and exited.
    private static func receiveDescriptor(_ socket: Int32) -> Int32 {
        var byte: UInt8 = 0
        // A cmsghdr (16 bytes) and one int, padded to 8: CMSG_SPACE(sizeof(int)).
        var control = [UInt64](repeating: 0, count: 3)
        let headerSize = MemoryLayout<cmsghdr>.size
        return withUnsafeMutablePointer(to: &byte) { byte in
            control.withUnsafeMutableBytes { control in
                var vector = iovec(iov_base: UnsafeMutableRawPointer(byte), iov_len: 1)
                return withUnsafeMutablePointer(to: &vector) { vector in
                    var message = msghdr()
                    message.msg_iov = vector
                    message.msg_iovlen = 1
                    message.msg_control = control.baseAddress
                    message.msg_controllen = control.count
                    var got: Int
                    repeat { got = recvmsg(socket, &message, Int32(MSG_CMSG_CLOEXEC)) } while got < 0 && errno == EINTR
                    guard got > 0, message.msg_controllen >= headerSize + 4 else { return -1 }
                    let header = control.load(as: cmsghdr.self)
                    guard header.cmsg_level == SOL_SOCKET, header.cmsg_type == Int32(SCM_RIGHTS) else { return -1 }
                    return control.load(fromByteOffset: headerSize, as: Int32.self)
                }
            }
        }
    }

    /// Detaches the mount as fuse_kern_unmount() does, the device still open: not if the
    /// connection is already gone (POLLERR: unmounted or aborted by someone else, and what
    /// is mounted there now is not ours); as root directly, otherwise by fusermount3 -u.
    func unmount(_ mountpoint: String) {
        var poller = pollfd(fd: device, events: 0, revents: 0)
        if poll(&poller, 1, 0) == 1 && poller.revents & Int16(POLLERR) != 0 { return }
        if geteuid() == 0 && umount2(mountpoint, Int32(MNT_DETACH)) == 0 { return }
        FUSEServer.runFusermount(["-u", "-q", "-z", "--", mountpoint])
    }

    /// Once the session has closed the device: our end of the socket closed, fusermount3
    /// finds nothing left to unmount, exits and is reaped.
    func release() {
        close(socket)
        var status: Int32 = 0
        while waitpid(helper, &status, 0) < 0 && errno == EINTR {}
    }
}

// auto_unmount's race, closed from our side. libfuse hands fusermount3 one end of a
// socketpair and keeps the other, untracked, for the life of the process; fusermount3
// unmounts when that end closes, but only if opening the mountpoint then fails with
// ENOTCONN (should_auto_unmount() in util/fusermount.c). When a process dies its fds are
// dropped in ascending order (close_files(), fs/file.c) but each file's release is a
// task_work run newest first (task_work_run() keeps no FIFO order since v5.18), so the
// file with the higher fd is released first. libfuse's socket sits just above /dev/fuse:
// fusermount3 was told while the connection still lived, its open() was then aborted
// (ECONNABORTED) and the dead mount stayed: 2 of 20 kill -9s with a writer in flight on
// the loaded 2-core VM. With the socket below the device the connection is aborted first.
import Glibc

extension FUSEServer {
    /// The fds open now, lowest first.
    static func openDescriptors() -> [Int32] {
        guard let directory = Glibc.opendir("/proc/self/fd") else { return [] }
        defer { closedir(directory) }
        let own = dirfd(directory)
        var fds: [Int32] = []
        while let entry = Glibc.readdir(directory) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            if let fd = Int32(name), fd != own { fds.append(fd) }
        }
        return fds.sorted()
    }

    /// A low fd held (on /dev/null) across the mount, for the socket to move into.
    static func reserveDescriptor() -> Int32 { Glibc.open("/dev/null", O_RDONLY | O_CLOEXEC) }

    /// Moves the socket the mount opened (new since `before`) into `reserved` when that is
    /// below `device`, close-on-exec so no child of ours keeps fusermount3 waiting.
    static func lowerAutoUnmountSocket(into reserved: Int32, openedSince before: [Int32], device: Int32) {
        guard reserved >= 0 else { return }
        if reserved < device {
            for fd in openDescriptors() where fd > reserved && !before.contains(fd) {
                var info = stat()
                guard fstat(fd, &info) == 0, info.st_mode & S_IFMT == S_IFSOCK else { continue }
                if dup2(fd, reserved) == reserved {
                    _ = fcntl(reserved, F_SETFD, FD_CLOEXEC)
                    close(fd)
                    return
                }
            }
        }
        close(reserved)
    }
}

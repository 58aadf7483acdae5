import ControlFS
import FUSE
import Foundation
import Glibc
import Locking
import SystemPackage
import Testing

/// A stream file that hands out what `feed` queued, consuming it, and waits while the
/// queue is empty, as trace_pipe does.
final class Feed: Sendable {
    let queue = PthreadMutex<[UInt8]>([])
    func add(_ text: String) { queue.withLock { $0 += Array(text.utf8) } }

    var stream: ControlStream {
        ControlStream { [self] buffer, nonBlocking, interrupted throws(Errno) in
            while true {
                let n = queue.withLock { queue -> Int in
                    let n = min(queue.count, buffer.count)
                    buffer.copyBytes(from: queue[..<n])
                    queue.removeFirst(n)
                    return n
                }
                if n > 0 { return n }
                if nonBlocking { throw .resourceTemporarilyUnavailable }
                if interrupted() { throw .interrupted }
                usleep(5_000)
            }
        }
    }
}

@Suite(.serialized, .enabled(if: MountedTree.available, "needs /dev/fuse (CI has it, as root)"))
struct FUSEStreamTests {
    @Test func catOfAStreamWaitsForDataAndAnInterruptEndsIt() throws {
        let feed = Feed()
        let root = ControlDirectory()
        root.add("trace_pipe", feed.stream)
        let mount = try MountedTree(root)
        defer { mount.stop() }
        var info = stat()
        #expect(stat(mount.path + "/trace_pipe", &info) == 0 && info.st_size == 0 && info.st_mode & 0o777 == 0o444)

        var none = sigset_t()
        sigemptyset(&none)
        pthread_sigmask(SIG_SETMASK, &none, nil)
        let cat = Process()
        cat.executableURL = URL(fileURLWithPath: "/bin/cat")
        cat.arguments = [mount.path + "/trace_pipe"]
        let out = Pipe()
        cat.standardOutput = out
        try cat.run()
        usleep(200_000)
        #expect(cat.isRunning)  // nothing to read: cat waits in read(2)
        feed.add("first line\n")
        feed.add("second line\n")
        var got = Data()
        let deadline = Date().addingTimeInterval(5)
        while got.count < 23 && Date() < deadline { got += out.fileHandleForReading.availableData }
        #expect(String(decoding: got, as: UTF8.self) == "first line\nsecond line\n")
        // ^C: the kernel sends FUSE_INTERRUPT for the waiting read, which then gives up.
        let start = Date()
        kill(cat.processIdentifier, SIGINT)
        cat.waitUntilExit()
        #expect(Date().timeIntervalSince(start) < 2)
        #expect(cat.terminationReason == .uncaughtSignal)
    }

    @Test func aNonBlockingReadOfAnEmptyStreamIsEAGAINAndWritesAreRefused() throws {
        let feed = Feed()
        let root = ControlDirectory()
        root.add("trace_pipe", feed.stream)
        let mount = try MountedTree(root)
        defer { mount.stop() }
        let fd = open(mount.path + "/trace_pipe", O_RDONLY | O_NONBLOCK)
        #expect(fd >= 0)
        defer { close(fd) }
        var buffer = [UInt8](repeating: 0, count: 64)
        #expect(Glibc.read(fd, &buffer, 64) == -1 && errno == EAGAIN)
        feed.add("x\n")
        #expect(Glibc.read(fd, &buffer, 64) == 2)
        #expect(open(mount.path + "/trace_pipe", O_WRONLY) == -1 && errno == EACCES)
    }
}

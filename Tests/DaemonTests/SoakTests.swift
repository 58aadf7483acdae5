import Foundation
import Glibc
import Locking
import Synchronization
import Testing

/// One write(2) of `text` to `path`, as `echo text > path` does: 0 or the errno.
func echo(_ text: String, _ path: String) -> Int32 {
    let fd = open(path, O_WRONLY | O_TRUNC)
    guard fd >= 0 else { return errno }
    defer { close(fd) }
    let bytes = Array(text.utf8)
    return write(fd, bytes, bytes.count) == bytes.count ? 0 : errno
}

/// The whole file, as `cat path` reads it; nil on an error.
func cat(_ path: String) -> String? {
    let fd = open(path, O_RDONLY)
    guard fd >= 0 else { return nil }
    defer { close(fd) }
    var data: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 65536)
    while true {
        let got = read(fd, &buffer, buffer.count)
        if got < 0 { return nil }
        if got == 0 { return String(decoding: data, as: UTF8.self) }
        data += buffer[0..<got]
    }
}

/// What the soak's clients share: their failures, the stop flag and their counts.
final class Soak: Sendable {
    let failures = PthreadMutex<[String]>([])
    let stop = Atomic(false)
    let expectedActive: PthreadMutex<[Int]>
    let ioCount = Atomic(0)
    let stateFlips = Atomic(0)
    let churns = Atomic(0)

    init(allocators: Int) { expectedActive = PthreadMutex([Int](repeating: 0, count: allocators)) }

    @Sendable func must(_ result: Int32, _ what: String) {
        if result != 0 { failures.withLock { $0.append("\(what): errno \(result)") } }
    }
}

/// dmaemud under many concurrent shell-like clients for a bounded time (DMAEMU_SOAK_SECONDS,
/// 10 by default): readers of every file, and writers of alloc/free, io, state,
/// create_pool/destroy_pool and add_device/remove_device, each keeping the count of what
/// it did. Afterwards the daemon's counters are exactly those counts, no write failed, and
/// its resident memory grew by less than 64 MiB over the second half of the run.
@Suite(.enabled(if: runsHere(access("/dev/fuse", R_OK | W_OK) == 0), "needs /dev/fuse (CI has it, as root)"))
struct SoakTests {
    @Test func manyClientsThenExactCounters() throws {
        let seconds = Double(ProcessInfo.processInfo.environment["DMAEMU_SOAK_SECONDS"] ?? "") ?? 10
        let config = """
            \(smallMachineTables)
            [[device]]
            driver = "generic"
            name = "gen0"
            [[device]]
            driver = "generic"
            name = "gen1"
            [[device]]
            driver = "nvme"
            name = "nvme0"
            capacity = "64M"
            """
        try withDaemon(config: config, ready: "devices/nvme0/io") { mnt, daemon in try soak(mnt, daemon, seconds: seconds) }
    }

    func soak(_ mnt: String, _ daemon: Process, seconds: Double) throws {
        func rss() -> Int {
            let status = cat("/proc/\(daemon.processIdentifier)/status") ?? ""
            let line = status.split(separator: "\n").first { $0.hasPrefix("VmRSS:") } ?? ""
            return Int(line.split(separator: " ")[1]) ?? 0  // kB
        }

        let gen0 = "\(mnt)/devices/gen0"
        let allocators = 4
        let soak = Soak(allocators: allocators)
        let must = soak.must
        for client in 0..<allocators { must(echo("c\(client) 64", "\(gen0)/create_pool"), "create_pool c\(client)") }
        var clients: [@Sendable () -> Void] = []
        // Allocators: alloc k, then free all but one, oldest or newest, on a pool of their own.
        for client in 0..<allocators {
            clients.append {
                var active = 0
                var k = 1
                while !soak.stop.load(ordering: .relaxed) {
                    k = k % 997 + 13
                    must(echo("\(k)", "\(gen0)/dma_pools/c\(client)/alloc"), "alloc")
                    must(echo("\(k - 1) \(k % 2 == 0 ? "oldest" : "newest")", "\(gen0)/dma_pools/c\(client)/free"), "free")
                    active += 1
                }
                soak.expectedActive.withLock { $0[client] = active }
            }
        }
        // I/O: writes and verifies of 16 KiB at a client's own offsets.
        for client in 0..<2 {
            clients.append {
                var n = 0
                while !soak.stop.load(ordering: .relaxed) {
                    let op = n % 2 == 0 ? "write" : "verify"
                    must(echo("\(op) 16K count=4 offset=\(client << 20) seed=\(n)", "\(mnt)/devices/nvme0/io"), "io")
                    soak.ioCount.add(op == "write" ? 4 : 8, ordering: .relaxed)
                    n += 1
                }
            }
        }
        // A device unbound and bound again, and pools and devices made and destroyed.
        clients.append {
            while !soak.stop.load(ordering: .relaxed) {
                must(echo("remove", "\(mnt)/devices/gen1/state"), "remove")
                must(echo("probe", "\(mnt)/devices/gen1/state"), "probe")
                soak.stateFlips.add(1, ordering: .relaxed)
            }
        }
        clients.append {
            var n = 0
            while !soak.stop.load(ordering: .relaxed) {
                must(echo("churn\(n) 128", "\(gen0)/create_pool"), "create_pool churn")
                must(echo("5", "\(gen0)/dma_pools/churn\(n)/alloc"), "alloc churn")
                must(echo("churn\(n)", "\(gen0)/destroy_pool"), "destroy_pool churn")
                must(echo("generic churn-dev\(n)", "\(mnt)/control/add_device"), "add_device")
                must(echo("churn-dev\(n)", "\(mnt)/control/remove_device"), "remove_device")
                soak.churns.add(1, ordering: .relaxed)
                n += 1
            }
        }
        // Readers of every file there is, listing the tree as they go.
        let readable = [
            "metrics", "kmsg", "kernel/buddyinfo", "kernel/debug/swiotlb/io_tlb_used", "devices/gen0/pools",
            "devices/nvme0/stats", "devices/nvme0/pools", "devices/gen1/state", "devices/gen0/dma_pools/c0/nr_active",
        ]
        for _ in 0..<4 {
            clients.append {
                while !soak.stop.load(ordering: .relaxed) {
                    for file in readable where cat("\(mnt)/\(file)") == nil {
                        soak.failures.withLock { $0.append("read \(file): errno \(errno)") }
                    }
                    _ = try? FileManager.default.subpathsOfDirectory(atPath: "\(mnt)/devices")
                }
            }
        }
        let done = DispatchGroup()
        for client in clients {
            done.enter()
            Thread.detachNewThread {
                client()
                done.leave()
            }
        }
        usleep(UInt32(seconds * 500_000))
        let halfway = rss()
        usleep(UInt32(seconds * 500_000))
        soak.stop.store(true, ordering: .relaxed)
        #expect(done.wait(timeout: .now() + 120) == .success, "clients stopped")
        let end = rss()

        #expect(soak.failures.withLock { $0 }.isEmpty, "\(soak.failures.withLock { $0.prefix(10) })")
        let active = soak.expectedActive.withLock { $0 }
        for client in 0..<allocators {
            #expect(cat("\(gen0)/dma_pools/c\(client)/nr_active") == "\(active[client])\n", "client \(client)")
        }
        let stats = cat("\(mnt)/devices/nvme0/stats") ?? ""
        #expect(stats.contains("\nios \(soak.ioCount.load(ordering: .relaxed))\n") && stats.contains("\nerrors 0\n"), "\(stats)")
        #expect(cat("\(mnt)/devices/gen1/state") == "bound\n")
        #expect(!(cat("\(gen0)/pools") ?? "").contains("churn"), "every churn pool destroyed")
        #expect(try FileManager.default.contentsOfDirectory(atPath: "\(mnt)/devices").sorted() == ["gen0", "gen1", "nvme0"])
        #expect(soak.stateFlips.load(ordering: .relaxed) > 10 && soak.churns.load(ordering: .relaxed) > 10)
        #expect(end - halfway < 64 << 10, "RSS \(halfway) kB at half time, \(end) kB at the end")
        print("soak: \(seconds) s, flips \(soak.stateFlips.load(ordering: .relaxed)), churns \(soak.churns.load(ordering: .relaxed)), "
              + "ios \(soak.ioCount.load(ordering: .relaxed)), RSS \(halfway) -> \(end) kB")
    }
}

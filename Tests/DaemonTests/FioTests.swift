import Foundation
import Glibc
import TestSupport
import Testing

/// fio, the seeds' own tool (Debian's package; `make deps` installs it).
let fioPresent = access("/usr/bin/fio", X_OK) == 0

/// fio against the mounted `disk` files: direct I/O through libaio, several requests in
/// flight (they arrive on several FUSE threads), and fio's own crc32c check of every block
/// it wrote, through each driver, direct and bounced (a 32-bit mask on an 8 GiB machine,
/// whose pages come from above 4 GiB first).
@Suite(.serialized, .enabled(if: runsHere(access("/dev/fuse", R_OK | W_OK) == 0 && fioPresent), "needs /dev/fuse and fio"))
struct FioTests {
    static let config = """
        [machine]
        ram = "8G"
        [swiotlb]
        size = "64M"
        [[device]]
        driver = "mpt3sas"
        name = "hba0"
        hba_queue_depth = 512
        capacity = "64M"
        [[device]]
        driver = "mpt3sas"
        name = "hba1"
        hba_queue_depth = 512
        capacity = "64M"
        dma_mask_bits = 32
        [[device]]
        driver = "megaraid_sas"
        name = "sas0"
        capacity = "64M"
        dma_mask_bits = 32
        [[device]]
        driver = "nvme"
        name = "nvme0"
        capacity = "64M"
        [[device]]
        driver = "nvme"
        name = "nvme1"
        capacity = "64M"
        dma_mask_bits = 32
        """

    /// Two jobs of 16 MiB each, 64 KiB random writes 16 deep, then fio reads every block
    /// back and checks its crc32c header (verify_fatal: the first bad block fails the run).
    static func verify(_ disk: String) throws -> (status: Int32, output: String) {
        try shell("""
            fio --name=verify --filename='\(disk.replacingOccurrences(of: ":", with: "\\:"))' --ioengine=libaio --direct=1 \
                --rw=randwrite --bs=64k --iodepth=16 --numjobs=2 --size=16M --offset_increment=16M \
                --verify=crc32c --do_verify=1 --verify_fatal=1 --verify_state_save=0 --group_reporting 2>&1
            """)
    }

    @Test(.timeLimit(.minutes(5))) func fioVerifiesThroughEveryDriverDirectAndBounced() throws {
        try withDaemon(config: Self.config, ready: "devices/nvme1/disk") { mountpoint, _ in
            let devices = mountpoint + "/devices/"
            let added = try shell("echo 'dm-crypt dm-0 lower=nvme1 key=\(cryptKey)' > \(mountpoint)/control/add_device")
            #expect(added.status == 0, "\(added.output)")
            for name in ["hba0", "hba1", "sas0", "nvme0", "nvme1", "dm-0"] {
                let run = try Self.verify(devices + name + "/disk")
                #expect(run.status == 0 && run.output.contains("err= 0"), "\(name): \(run.output)")
                let stats = cat(devices + name + "/stats") ?? ""
                #expect(stats.contains("\nerrors 0\n") && !stats.contains("\nios 0\n"), "\(name): \(stats)")
                if ["hba1", "sas0", "nvme1"].contains(name) {
                    #expect(!stats.contains("\nbounced_bytes 0\n"), "\(name) bounces: \(stats)")
                }
            }
            // Every descriptor went back once the jobs were done.
            let pools = cat(devices + "nvme1/pools") ?? ""
            #expect(pools.contains("prp list page       0") && pools.contains("prp list 256        0"), "\(pools)")
        }
    }
}

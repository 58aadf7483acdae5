// kernel/debug/swiotlb/: the debugfs counters of a software IO TLB, as
// swiotlb_create_debugfs_files() makes them (a subdirectory per restricted pool).
import ControlFS
import Lib
import SWIOTLB
import SystemPackage

enum SWIOTLBDebugfs {
    /// The files of `mem`: io_tlb_used_hiwater came in 6.6 (not in 6.1), and
    /// io_tlb_transient_nslabs exists only in a kernel built with CONFIG_SWIOTLB_DYNAMIC
    /// (`dynamic`: the default mem's setting, which restricted pools share).
    static func add(_ mem: IOTLBMem, dynamic: Bool, to directory: ControlDirectory) {
        directory.add("io_tlb_nslabs", ControlAttribute(mode: 0o400, show: { "\(mem.nslabs)\n" }))
        directory.add("io_tlb_used", ControlAttribute(mode: 0o400, show: { "\(mem.used)\n" }))
        if mem.kernel >= .v6_12 { addHiwater(mem, to: directory) }
        if dynamic { directory.add("io_tlb_transient_nslabs", ControlAttribute(mode: 0o400, show: { "\(mem.transientNslabs)\n" })) }
    }

    private static func addHiwater(_ mem: IOTLBMem, to directory: ControlDirectory) {
        directory.add("io_tlb_used_hiwater", ControlAttribute(
            mode: 0o600, show: { "\(mem.usedHiwater)\n" },
            store: { text throws(Errno) in
                let value = Int(try StoreParsing.number(text, max: UInt64(Int.max)))
                do throws(SWIOTLBError) { try mem.setUsedHiwater(value) } catch { throw .invalidArgument }
            }))
    }
}

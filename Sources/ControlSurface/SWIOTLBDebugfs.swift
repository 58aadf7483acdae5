// kernel/debug/swiotlb/: the debugfs counters of a software IO TLB, as
// swiotlb_create_debugfs_files() makes them (a subdirectory per restricted pool).
import ControlFS
import Lib
import SWIOTLB
import SystemPackage

enum SWIOTLBDebugfs {
    static func add(_ mem: IOTLBMem, to directory: ControlDirectory) {
        directory.add("io_tlb_nslabs", ControlAttribute(mode: 0o400, show: { "\(mem.nslabs)\n" }))
        directory.add("io_tlb_used", ControlAttribute(mode: 0o400, show: { "\(mem.used)\n" }))
        directory.add("io_tlb_used_hiwater", ControlAttribute(
            mode: 0o600, show: { "\(mem.usedHiwater)\n" },
            store: { text throws(Errno) in
                let value = Int(try StoreParsing.number(text, max: UInt64(Int.max)))
                do throws(SWIOTLBError) { try mem.setUsedHiwater(value) } catch { throw .invalidArgument }
            }))
        directory.add("io_tlb_transient_nslabs", ControlAttribute(mode: 0o400, show: { "\(mem.transientNslabs)\n" }))
    }
}

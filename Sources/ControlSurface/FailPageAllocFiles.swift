// kernel/debug/fail_page_alloc/ and fail_mempool_alloc_bulk/: the kernel's
// fault-injection attributes (Documentation/fault-injection/fault-injection.rst), read
// and written as debugfs does: a number per file, mode 0600; min-order is the page
// allocator's own.
import ControlFS
import Lib
import PhysicalMemory
import SystemPackage

enum FailPageAllocFiles {
    static func add(_ faults: FaultInjection, to directory: ControlDirectory, minOrder: Bool = true) {
        func file(_ name: String, _ show: @escaping @Sendable (FaultInjection.Attributes) -> String,
                  _ store: @escaping @Sendable (inout FaultInjection.Attributes, String) throws(Errno) -> Void) {
            directory.add(name, ControlAttribute(
                mode: 0o600, show: { [weak faults] () throws(Errno) in
                    guard let faults else { throw .noDevice }
                    return show(faults.attributes) + "\n"
                },
                store: { [weak faults] text throws(Errno) in
                    guard let faults else { throw .noDevice }
                    var attributes = faults.attributes
                    try store(&attributes, text)
                    faults.attributes = attributes
                }))
        }
        file("probability", { String($0.probability) }) { (a, text) throws(Errno) in a.probability = try StoreParsing.number(text) }
        file("interval", { String($0.interval) }) { (a, text) throws(Errno) in a.interval = try StoreParsing.number(text) }
        file("times", { String($0.times) }) { (a, text) throws(Errno) in a.times = try StoreParsing.int32(text) }
        file("space", { String($0.space) }) { (a, text) throws(Errno) in a.space = try StoreParsing.int32(text) }
        file("verbose", { String($0.verbose) }) { (a, text) throws(Errno) in a.verbose = try StoreParsing.number(text) }
        guard minOrder else { return }
        file("min-order", { String($0.minOrder) }) { (a, text) throws(Errno) in a.minOrder = try StoreParsing.number(text) }
    }
}

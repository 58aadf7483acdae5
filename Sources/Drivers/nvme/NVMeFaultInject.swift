// drivers/nvme/host/fault_inject.c: a fault attribute per disk (probability, interval,
// times, space, verbose, as Documentation/fault-injection describes them) and the status
// that nvme_should_fail() puts in place of the controller's when it fires, at completion
// (nvme_end_req()): NVME_SC_INVALID_OPCODE | NVME_SC_DNR unless set. The request ends
// with that status, so its unmap, descriptors and tag are released on the error path of
// the completion. Set through the driver's parameters, live while the disk is bound.
import PhysicalMemory
import Synchronization

final class NVMeFaultInject: Sendable {
    let attributes = FaultInjection(name: "fault_inject")
    /// The 15-bit status field (DNR is bit 14).
    let status = Atomic<UInt16>(0x4001)

    init() {
        var defaults = attributes.attributes
        defaults.minOrder = 0
        defaults.verbose = 0
        attributes.attributes = defaults
    }

    /// nvme_should_fail(): the status the request completes with.
    @inline(__always)
    func complete(_ status: UInt16) -> UInt16 {
        attributes.shouldFail(size: 1, noWarn: true) ? self.status.load(ordering: .relaxed) : status
    }

    var parameters: [(name: String, value: String)] {
        let a = attributes.attributes
        return [("fault_inject_probability", String(a.probability)), ("fault_inject_interval", String(a.interval)),
                ("fault_inject_times", String(a.times)),
                ("fault_inject_status", "0x" + String(status.load(ordering: .relaxed), radix: 16))]
    }
}

// events/<system>/<event>/format: the event's record as the kernel lays it out (the common
// fields, then TP_STRUCT__entry's in order, each at its C alignment; __string and
// __dynamic_array as 4-byte __data_loc words) and its print fmt. dmaemu's own binary
// records are laid out otherwise; this is what tools that read a kernel's format files
// expect. The last line names the kernel version whose format it is.
import Lib

/// One field of TP_STRUCT__entry: its C type, name, size, and signedness; `dataLoc` for
/// __string and __dynamic_array.
struct TraceField {
    let type: String
    let name: String
    let size: Int
    let signed: Bool
    var dataLoc = false

    static func u64(_ name: String) -> TraceField { TraceField(type: "u64", name: name, size: 8, signed: false) }
    static func sizeT(_ name: String) -> TraceField { TraceField(type: "size_t", name: name, size: 8, signed: false) }
    static func pointer(_ name: String) -> TraceField { TraceField(type: "void *", name: name, size: 8, signed: false) }
    static func int(_ name: String) -> TraceField { TraceField(type: "int", name: name, size: 4, signed: true) }
    static let dir = TraceField(type: "enum dma_data_direction", name: "dir", size: 4, signed: false)
    static let attrs = TraceField(type: "unsigned long", name: "attrs", size: 8, signed: false)
    static func string(_ name: String) -> TraceField {
        TraceField(type: "__data_loc char[]", name: name, size: 4, signed: false, dataLoc: true)
    }
    static func array(_ type: String, _ name: String) -> TraceField {
        TraceField(type: "__data_loc \(type)[]", name: name, size: 4, signed: false, dataLoc: true)
    }
}

extension TraceEvent {
    /// TP_STRUCT__entry.
    func fields(in kernel: KernelVersion) -> [TraceField] {
        switch self {
        case .dmaMapPage, .dmaMapResource:
            return [.string("device"), .u64("phys_addr"), .u64("dma_addr"), .sizeT("size"), .dir, .attrs]
        case .dmaUnmapPage, .dmaUnmapResource:
            return [.string("device"), .u64("addr"), .sizeT("size"), .dir, .attrs]
        case .dmaAlloc:
            return [.string("device"), .pointer("virt_addr"), .u64("dma_addr"),
                    .sizeT("size"), TraceField(type: "gfp_t", name: "flags", size: 4, signed: false), .dir, .attrs]
        case .dmaFree:
            return [.string("device"), .pointer("virt_addr"), .u64("dma_addr"),
                    .sizeT("size"), .dir, .attrs]
        case .dmaMapSG:
            return [.string("device"), .int("full_nents"), .int("full_ents"), TraceField(type: "bool", name: "truncated", size: 1, signed: false),
                    .array("u64", "phys_addrs"), .array("u64", "dma_addrs"), .array("unsigned int", "lengths"), .dir, .attrs]
        case .dmaUnmapSG:
            return [.string("device"), .array("u64", "addrs"), .dir, .attrs]
        case .dmaSyncSingleForCPU, .dmaSyncSingleForDevice:
            return [.string("device"), .u64("dma_addr"), .sizeT("size"), .dir]
        case .dmaSyncSGForCPU, .dmaSyncSGForDevice:
            return [.string("device"), .array("u64", "dma_addrs"), .array("unsigned int", "lengths"), .dir]
        case .swiotlbBounced:
            return [.string("dev_name"), .u64("dma_mask"), TraceField(type: "dma_addr_t", name: "dev_addr", size: 8, signed: false),
                    .sizeT("size"), TraceField(type: "bool", name: "force", size: 1, signed: false)]
        case .dmaPoolCreate:
            return [.string("device"), .string("name"), .pointer("pool"), .sizeT("size"), .sizeT("align"), .sizeT("boundary")]
        case .dmaPoolAlloc, .dmaPoolFree:
            return [.string("device"), .string("name"), .pointer("pool"), .pointer("vaddr"), .u64("dma")]
        case .dmaPoolDestroy:
            return [.string("device"), .string("name"), .pointer("pool")]
        }
    }

    /// TP_printk, with its macros as the kernel's format file shows them expanded.
    func printFormat(in kernel: KernelVersion) -> String {
        let dir = "__print_symbolic(REC->dir, { 0, \"BIDIRECTIONAL\" }, { 1, \"TO_DEVICE\" }, { 2, \"FROM_DEVICE\" }, { 3, \"NONE\" })"
        var attrNames = ["WEAK_ORDERING", "WRITE_COMBINE", "NO_KERNEL_MAPPING", "SKIP_CPU_SYNC", "FORCE_CONTIGUOUS",
                         "ALLOC_SINGLE_PAGES", "NO_WARN", "PRIVILEGED"]
        var attrBits = [1, 2, 4, 5, 6, 7, 8, 9]
        if kernel >= .v6_18 {
            attrNames.append("MMIO")
            attrBits.append(10)
        }
        let attrs = "__print_flags(REC->attrs, \"|\", "
            + zip(attrBits, attrNames).map { "{ (1UL << \($0)), \"\($1)\" }" }.joined(separator: ", ") + ")"
        let array64 = { (name: String) in "__print_array(__get_dynamic_array(\(name)), __get_dynamic_array_len(\(name)) / sizeof(u64), sizeof(u64))" }
        let array32 = { (name: String) in
            "__print_array(__get_dynamic_array(\(name)), __get_dynamic_array_len(\(name)) / sizeof(unsigned int), sizeof(unsigned int))"
        }
        switch self {
        case .dmaMapPage, .dmaMapResource:
            return "\"%s dir=%s dma_addr=%llx size=%zu phys_addr=%llx attrs=%s\", __get_str(device), \(dir), REC->dma_addr, REC->size, REC->phys_addr, \(attrs)"
        case .dmaUnmapPage, .dmaUnmapResource:
            return "\"%s dir=%s dma_addr=%llx size=%zu attrs=%s\", __get_str(device), \(dir), REC->addr, REC->size, \(attrs)"
        case .dmaAlloc:
            return "\"%s dir=%s dma_addr=%llx size=%zu virt_addr=%p flags=%s attrs=%s\", __get_str(device), \(dir), REC->dma_addr, "
                + "REC->size, REC->virt_addr, (REC->flags) ? __print_flags(REC->flags, \"|\", \(GFPNames.formatTable)) : \"none\", \(attrs)"
        case .dmaFree:
            return "\"%s dir=%s dma_addr=%llx size=%zu virt_addr=%p attrs=%s\", __get_str(device), \(dir), REC->dma_addr, REC->size, REC->virt_addr, \(attrs)"
        case .dmaMapSG:
            return "\"%s dir=%s nents=%d/%d ents=%d/%d%s dma_addrs=%s sizes=%s phys_addrs=%s attrs=%s\", __get_str(device), \(dir), "
                + "min_t(int, REC->full_nents, 128), REC->full_nents, min_t(int, REC->full_ents, 128), REC->full_ents, "
                + "REC->truncated ? \" [TRUNCATED]\" : \"\", \(array64("dma_addrs")), \(array32("lengths")), \(array64("phys_addrs")), \(attrs)"
        case .dmaUnmapSG:
            return "\"%s dir=%s phys_addrs=%s attrs=%s\", __get_str(device), \(dir), \(array64("addrs")), \(attrs)"
        case .dmaSyncSingleForCPU, .dmaSyncSingleForDevice:
            return "\"%s dir=%s dma_addr=%llx size=%zu\", __get_str(device), \(dir), REC->dma_addr, REC->size"
        case .dmaSyncSGForCPU, .dmaSyncSGForDevice:
            return "\"%s dir=%s dma_addrs=%s sizes=%s\", __get_str(device), \(dir), \(array64("dma_addrs")), \(array32("lengths"))"
        case .swiotlbBounced:
            return "\"dev_name: %s dma_mask=%llx dev_addr=%llx size=%zu %s\", __get_str(dev_name), REC->dma_mask, "
                + "(unsigned long long)REC->dev_addr, REC->size, REC->force ? \"FORCE\" : \"NORMAL\""
        case .dmaPoolCreate:
            return "\"%s name=\\\"%s\\\" pool=%p size=%zu align=%zu boundary=%zu\", __get_str(device), __get_str(name), REC->pool, "
                + "REC->size, REC->align, REC->boundary"
        case .dmaPoolAlloc, .dmaPoolFree:
            return "\"%s name=\\\"%s\\\" pool=%p vaddr=%p dma=%llx\", __get_str(device), __get_str(name), REC->pool, REC->vaddr, REC->dma"
        case .dmaPoolDestroy:
            return "\"%s name=\\\"%s\\\" pool=%p\", __get_str(device), __get_str(name), REC->pool"
        }
    }

    /// The whole format file.
    public func formatFile(in kernel: KernelVersion) -> String {
        guard let name = name(in: kernel) else { return "" }
        var text = "name: \(name)\nID: \(id)\nformat:\n"
        text += "\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;\n"
        text += "\tfield:unsigned char common_flags;\toffset:2;\tsize:1;\tsigned:0;\n"
        text += "\tfield:unsigned char common_preempt_count;\toffset:3;\tsize:1;\tsigned:0;\n"
        text += "\tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;\n\n"
        var offset = 8
        for field in fields(in: kernel) {
            let align = field.dataLoc ? 4 : field.size
            offset = (offset + align - 1) / align * align
            text += "\tfield:\(field.type) \(field.name);\toffset:\(offset);\tsize:\(field.size);\tsigned:\(field.signed ? 1 : 0);\n"
            offset += field.size
        }
        text += "\nprint fmt: \(printFormat(in: kernel))\n"
        let origin = system == "dmapool" ? "dmaemu's own event (the kernel has no dmapool tracepoints)" : "Linux \(kernel.rawValue)'s format"
        return text + "# dmaemu: \(origin)\n"
    }
}

extension GFPNames {
    /// The table show_gfp_flags() passes, as its entries read: { mask, "NAME" }.
    static var formatTable: String { names.map { "{ \($0.0), \"\($0.1)\" }" }.joined(separator: ", ") }
}

// How the machine's default bounce-buffer allocator is set up: the knobs of the kernel
// command line (`swiotlb=<nslabs>[,<nareas>][,force|noforce]`) and of CONFIG_SWIOTLB_DYNAMIC,
// plus the confidential-VM model used to reproduce the seed's CoCo table.

import Lib
import PhysicalMemory

public struct SWIOTLBConfig: Sendable, Equatable {
    /// Slots in the boot pool (default 64 MiB = 32768).
    public var nslabs: Int = IOTLB.defaultBytes >> IOTLB.shift
    /// Areas; nil means the CPU count, as swiotlb_adjust_nareas(num_possible_cpus()).
    public var nareas: Int?
    /// CONFIG_SWIOTLB_DYNAMIC: grow by adding pools, and use transient pools meanwhile.
    public var dynamic = true
    /// swiotlb=force: every streaming map bounces.
    public var force = false
    /// swiotlb=noforce: no swiotlb at all.
    public var disabled = false
    /// CONFIG_DEBUG_FS: exact used and used_hiwater counters, updated by every map and
    /// unmap. Without it `used` is the unlocked sum of the areas' counts and there is no
    /// high-water mark, and CPUs no longer share a counter.
    public var debugfsCounters = true
    /// A confidential VM: every map bounces, memory handed to swiotlb is decrypted (and
    /// re-encrypted when a transient pool is freed) at this cost per page, and a boot
    /// pool of the default size is sized from RAM instead (adjustedForEncryptedMemory).
    public var confidential: ConfidentialComputing?
    /// Where the boot pool lies, when it must lie where a recorded machine's did ("software
    /// IO TLB: mapped [mem ...]"); nil places it as memblock_alloc_low() would here.
    public var bootAddress: PhysAddr?
    /// Whether bounces copy the data. A replay of a recording has no data to copy: with
    /// false every slot is found, used and freed as before, and no byte moves.
    public var movesData = true
    /// The kernel whose slot search the pools use: 6.1's differs from 6.12's (and loops
    /// for ever on one kind of map; see IOTLBPool.searchArea61).
    public var kernel: KernelVersion = .v6_12

    public init() {}

    public enum ParseError: Error, Equatable, CustomStringConvertible {
        case malformed(String)

        public var description: String {
            switch self { case .malformed(let text): "bad swiotlb= value '\(text)'" }
        }
    }

    /// Parses the kernel's `swiotlb=` value (without "swiotlb="), as setup_io_tlb_npages():
    /// nslabs rounded up to 128, an area count rounded up to a power of two, then at most
    /// one of `force` and `noforce`. Either number may be left out before a keyword.
    public init(kernelParameter text: String) throws(ParseError) {
        self.init()
        var fields = text.split(separator: ",", omittingEmptySubsequences: false).map(String.init)
        guard !fields.isEmpty, fields.count <= 3 else { throw .malformed(text) }
        if let last = fields.last, last == "force" || last == "noforce" {
            force = last == "force"
            disabled = last == "noforce"
            fields.removeLast()
        }
        guard fields.count <= 2 else { throw .malformed(text) }
        if let first = fields.first {
            guard let slabs = Int(first), slabs > 0, slabs <= 1 << 30 else { throw .malformed(text) }
            nslabs = (slabs + IOTLB.segmentSize - 1) / IOTLB.segmentSize * IOTLB.segmentSize
        }
        if fields.count == 2 {
            guard let areas = Int(fields[1]), areas >= 0, areas <= 1 << 16 else { throw .malformed(text) }
            nareas = roundUpPowerOfTwo(max(areas, 1))
        }
    }
}

/// The cost model of a confidential VM (SEV, TDX): sharing memory with the host.
public struct ConfidentialComputing: Sendable, Equatable {
    /// set_memory_decrypted() per 4 KiB page, in ns.
    public var decryptNsPerPage: Int
    /// set_memory_encrypted() per 4 KiB page, in ns.
    public var encryptNsPerPage: Int
    /// coherent_pool=: the atomic pool transient pools come from when a map may not block.
    public var coherentPoolBytes: Int

    public init(decryptNsPerPage: Int = 2000, encryptNsPerPage: Int = 2000, coherentPoolBytes: Int = 256 << 10) {
        self.decryptNsPerPage = decryptNsPerPage
        self.encryptNsPerPage = encryptNsPerPage
        self.coherentPoolBytes = coherentPoolBytes
    }
}

extension SWIOTLBConfig {
    /// mem_encrypt_setup_arch() and swiotlb_adjust_size(): in a SEV or TDX guest a boot
    /// pool still of the default size becomes 6% of RAM, clamped to 64 MiB...1 GiB, in
    /// whole segments (and rounded up to a power of two when the areas are already set).
    /// Returns the new slot count and the size the kernel reports, or nil to keep it.
    func adjustedForEncryptedMemory(totalMemory: UInt64) -> (nslabs: Int, reportedBytes: Int)? {
        guard confidential != nil, nslabs == IOTLB.defaultBytes >> IOTLB.shift else { return nil }
        var size = min(max(Int(totalMemory * 6 / 100), IOTLB.defaultBytes), 1 << 30)
        size = (size + IOTLB.size - 1) / IOTLB.size * IOTLB.size
        var slabs = ((size >> IOTLB.shift) + IOTLB.segmentSize - 1) / IOTLB.segmentSize * IOTLB.segmentSize
        if let nareas {  // round_up_default_nslabs()
            if slabs < IOTLB.segmentSize * nareas {
                slabs = roundUpPowerOfTwo(IOTLB.segmentSize * nareas)
                size = slabs << IOTLB.shift
            } else if slabs & (slabs - 1) != 0 {
                slabs = roundUpPowerOfTwo(slabs)
                size = slabs << IOTLB.shift
            }
        }
        return (slabs, size)
    }
}

func roundUpPowerOfTwo(_ value: Int) -> Int {
    var power = 1
    while power < value { power <<= 1 }
    return power
}

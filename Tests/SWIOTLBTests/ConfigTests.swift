import PhysicalMemory
import SWIOTLB
import Testing

@Suite struct ConfigTests {
    @Test func kernelParameter() throws {
        let full = try SWIOTLBConfig(kernelParameter: "4096,4,force")
        #expect(full.nslabs == 4096 && full.nareas == 4 && full.force && !full.disabled)
        // nslabs up to a multiple of 128; areas up to a power of two.
        #expect(try SWIOTLBConfig(kernelParameter: "1000").nslabs == 1024)
        let odd = try SWIOTLBConfig(kernelParameter: "100,3")
        #expect(odd.nslabs == 128 && odd.nareas == 4)
        #expect(try SWIOTLBConfig(kernelParameter: "noforce").disabled)
        let force = try SWIOTLBConfig(kernelParameter: "force")
        #expect(force.force && force.nslabs == 32768 && force.nareas == nil)
        #expect(try SWIOTLBConfig(kernelParameter: "65536,force").nslabs == 65536)
    }

    @Test(arguments: ["", "abc", "1,2,3", "force,1", "0", "-5", "64,x", "force,noforce", "64,2,force,1"])
    func malformed(_ text: String) {
        #expect(throws: SWIOTLBConfig.ParseError.malformed(text)) { try SWIOTLBConfig(kernelParameter: text) }
    }
}

@Suite struct BootPoolTests {
    /// A CoCo guest whose page sharing costs nothing, so that the sizes are quick to check.
    let free = ConfidentialComputing(decryptNsPerPage: 0, encryptNsPerPage: 0)

    func boot(ram gib: UInt64, _ configure: (inout SWIOTLBConfig) -> Void) throws -> (IOTLBMem, [String]) {
        let ram = try PhysicalMemory(size: gib << 30)
        var config = SWIOTLBConfig()
        configure(&config)
        let mem = try #require(IOTLBMem(ram: ram, config: config, cpus: 2))
        return (mem, ram.log.texts())
    }

    /// arch/x86/mm/mem_encrypt.c: size = total_mem * 6 / 100, clamped to
    /// [IO_TLB_DEFAULT_SIZE, SZ_1G], then swiotlb_adjust_size() and the areas' round-up.
    @Test func anEncryptedGuestSizesItsPoolFromRAM() throws {
        // 4 GiB: 257698037 bytes, 257699840 aligned to 2 KiB, 125830 slots, 125952 in whole
        // segments; reported as 245 MB, then rounded up to 2^17 slots for the two areas.
        let (four, fourLog) = try boot(ram: 4) { $0.confidential = free }
        #expect(four.nslabs == 131_072)
        #expect(fourLog.prefix(3) == [
            "software IO TLB: SWIOTLB bounce buffer size adjusted to 245MB",
            "software IO TLB: area num 2.",
            "software IO TLB: SWIOTLB bounce buffer size roundup to 256MB",
        ])
        // 1 GiB: 6% is below 64 MiB, so the default stays; 32 GiB: clamped to 1 GiB.
        let (one, oneLog) = try boot(ram: 1) { $0.confidential = free }
        #expect(one.nslabs == 32_768 && oneLog.first == "software IO TLB: SWIOTLB bounce buffer size adjusted to 64MB")
        let (big, _) = try boot(ram: 32) { $0.confidential = free }
        #expect(big.nslabs == 524_288)
        // A size given on the command line is kept; so is every size outside a CoCo guest.
        let (given, givenLog) = try boot(ram: 4) {
            $0.confidential = free
            $0.nslabs = 8192
        }
        #expect(given.nslabs == 8192 && !givenLog.contains { $0.contains("adjusted") })
        let (plain, _) = try boot(ram: 4) { _ in }
        #expect(plain.nslabs == 32_768)
    }

    @Test func theBootPoolCanLieWhereARecordedMachinesDid() throws {
        let (mem, log) = try boot(ram: 4) { $0.bootAddress = 0xbbfe_0000 }
        #expect(mem.pools.first?.start == 0xbbfe_0000)
        #expect(log.contains("software IO TLB: mapped [mem 0x00000000bbfe0000-0x00000000bffe0000] (64MB)"))
        // Only the pool's 16384 pages left the allocator: the rest of the blocks around it came back.
        #expect(mem.ram.unusedPages == (4 << 30) / 4096 - 1 - 16_384)
        // Where the range is not free RAM the pool goes where it would have gone anyway.
        let (moved, movedLog) = try boot(ram: 1) { $0.bootAddress = 0xbbfe_0000 }
        #expect(moved.pools.first?.start != 0xbbfe_0000)
        #expect(movedLog.contains { $0.hasPrefix("software IO TLB: [mem 0x00000000bbfe0000] is not free RAM here") })
    }
}

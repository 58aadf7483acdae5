import Block
import CLibcrypto
@testable import DMCrypt
import Drivers
import Foundation
import Lib
import Locking
import Mempool
import PhysicalMemory
import SystemPackage
import TestSupport
import Testing

let cryptKey = (0..<64).map { String(format: "%02x", ($0 * 37 + 11) & 0xff) }.joined()

/// A 1 GiB machine's devices with dm-crypt among the drivers.
func cryptDevices() throws -> Devices {
    try smallDevices(drivers: BuiltinDrivers.all.merging([DMCryptDriver.name: DMCryptDriver.factory(totalPages: 262143)]) { a, _ in a })
}

/// nvme0 (`capacity`) and dm-0 on it, its pages by `mode`.
func cryptMachine(_ mode: String = "single", capacity: String = "8M") throws -> Devices {
    let devices = try cryptDevices()
    try devices.add("nvme nvme0 capacity=\(capacity)")
    try devices.add("dm-crypt dm-0 lower=nvme0 key=\(cryptKey) page_alloc=\(mode)")
    return devices
}

func disk(_ devices: Devices, _ name: String) throws -> BlockQueue { try #require(devices.device(name)?.queue) }

@Suite struct DMCryptTests {
    /// Written through dm-0 at an odd offset, read raw from the lower disk, decrypted by
    /// Python's `cryptography` (OpenSSL's AES-XTS) sector by sector with tweak = sector.
    @Test(arguments: ["single", "bulk", "compound"])
    func theLowerDiskDecryptsWithAStandardXTS(mode: String) throws {
        let machine = try cryptMachine(mode)
        let offset = 7 * 512, count = (1 << 20) + 3 * 4096 + 1000
        let plain = (0..<count).map { DataPattern.byte(9, at: $0) }
        let upper = try disk(machine, "dm-0"), lower = try disk(machine, "nvme0")
        #expect(try plain.withUnsafeBytes { buffer throws(Errno) in try upper.write(from: buffer, at: offset) } == count)
        var raw = [UInt8](repeating: 0, count: count)
        _ = try raw.withUnsafeMutableBytes { buffer throws(Errno) in try lower.read(into: buffer, at: offset) }
        #expect(raw != plain)
        var back = [UInt8](repeating: 0, count: count)
        _ = try back.withUnsafeMutableBytes { buffer throws(Errno) in try upper.read(into: buffer, at: offset) }
        #expect(back == plain)

        // The whole sectors around the range, as Python gets them.
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("dmcrypt-\(mode)-\(getpid())")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let first = offset / 512, end = (offset + count + 511) / 512
        var sectors = [UInt8](repeating: 0, count: (end - first) * 512)
        _ = try sectors.withUnsafeMutableBytes { buffer throws(Errno) in try lower.read(into: buffer, at: first * 512) }
        try Data(sectors).write(to: directory.appendingPathComponent("raw"))
        try Data(plain).write(to: directory.appendingPathComponent("plain"))
        let script = """
            import sys
            from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
            key = bytes.fromhex('\(cryptKey)')
            raw = open('\(directory.path)/raw', 'rb').read()
            plain = open('\(directory.path)/plain', 'rb').read()
            out = b''
            for i in range(len(raw) // 512):
                tweak = (\(first) + i).to_bytes(16, 'little')
                d = Cipher(algorithms.AES(key), modes.XTS(tweak)).decryptor()
                out += d.update(raw[i * 512:(i + 1) * 512]) + d.finalize()
            skip = \(offset - first * 512)
            sys.exit(0 if out[skip:skip + len(plain)] == plain else 1)
            """
        try script.write(to: directory.appendingPathComponent("check.py"), atomically: true, encoding: .utf8)
        let result = try shell("python3 \(directory.path)/check.py")
        #expect(result.status == 0, "\(result.output)")
    }

    /// cipher_null-ecb (key "-"): the out bio carries the data unchanged.
    @Test func theNullCipherWritesThePlainData() throws {
        let machine = try cryptDevices()
        try machine.add("nvme nvme0 capacity=4M")
        #expect(throws: Errno.invalidArgument) { try machine.add("dm-crypt dm-0 lower=nvme0 cipher=cipher_null-ecb key=\(cryptKey)") }
        try machine.add("dm-crypt dm-0 lower=nvme0 cipher=cipher_null-ecb key=- page_alloc=bulk").io("write 64K offset=4096 seed=4")
        var raw = [UInt8](repeating: 0, count: 65536)
        let lower = try disk(machine, "nvme0")
        _ = try raw.withUnsafeMutableBytes { buffer throws(Errno) in try lower.read(into: buffer, at: 4096) }
        #expect(raw.elementsEqual((4096..<(4096 + 65536)).map { DataPattern.byte(4, at: $0) }))
    }

    @Test(arguments: ["single", "bulk", "compound"])
    func ioVerifiesThroughDmCrypt(mode: String) throws {
        let machine = try cryptMachine(mode)
        try machine.device("dm-0")!.io("verify 1M count=3 threads=2")
        try machine.device("dm-0")!.io("verify 4096 count=16 random seed=5")
        let stats = machine.device("dm-0")!.statsText
        #expect(stats.contains("page_alloc \(mode)\n"))
        #expect(stats.contains("alloc_bios 22\n"))  // 6 MiB writes and 16 small ones
    }

    /// Three 1 MiB writes at aligned offsets: 768 pages, and where each mode gets them.
    @Test func whereEachModeGetsItsPages() throws {
        let single = try cryptMachine("single")
        try single.device("dm-0")!.io("write 1M count=3")
        #expect(try single.device("dm-0")!.file("mempool") == """
            pool page_pool
            min_nr 256
            curr_nr 256
            alloc_total 768
            alloc_from_reserve 0
            alloc_waits 0
            alloc_failed 0
            free_to_reserve 0

            """)
        #expect(single.device("dm-0")!.statsText.contains("alloc_bios 3\nalloc_us_per_bio"))
        #expect(single.device("dm-0")!.statsText.contains("compound_blocks 0\n"))
        // single: the reserve came from crypt_page_alloc and is counted.
        #expect(single.device("dm-0")!.statsText.contains("n_allocated_pages 256\n"))

        let bulk = try cryptMachine("bulk")
        try bulk.device("dm-0")!.io("write 1M count=3")
        #expect(try bulk.device("dm-0")!.file("mempool").contains("alloc_total 768\nalloc_from_reserve 0\n"))
        // bulk: the reserve came from alloc_page() and is not.
        #expect(bulk.device("dm-0")!.statsText.contains("n_allocated_pages 0\n"))

        // compound: one order-8 block (1 MiB) per bio, nothing from the mempool.
        let compound = try cryptMachine("compound")
        try compound.device("dm-0")!.io("write 1M count=3")
        #expect(try compound.device("dm-0")!.file("mempool").contains("alloc_total 0\n"))
        #expect(compound.device("dm-0")!.statsText.contains("compound_blocks 3\n"))
    }

    /// 1 GiB: 262143 managed pages (pfn 0 is reserved); 2% is 5242 pages for one client;
    /// two share 2621 each, below the floor of BIO_MAX_VECS * 16 = 4096.
    @Test func clientsShareTwoPercentOfRAM() throws {
        let machine = try cryptMachine()
        #expect(machine.device("dm-0")!.statsText.contains("pages_per_client 5242\n"))
        try machine.add("nvme nvme1 capacity=4M")
        try machine.add("dm-crypt dm-1 lower=nvme1 key=\(cryptKey)")
        #expect(machine.device("dm-0")!.statsText.contains("pages_per_client 4096\n"))
        try machine.remove("dm-1")
        #expect(machine.device("dm-0")!.statsText.contains("pages_per_client 5242\n"))
    }

    @Test func theLowerDeviceIsHeldWhileDmCryptUsesIt() throws {
        let machine = try cryptMachine()
        let nvme = try #require(machine.device("nvme0"))
        #expect(throws: Errno.resourceBusy) { try nvme.remove() }
        #expect(throws: Errno.resourceBusy) { try machine.remove("nvme0") }
        #expect(machine.kmsg.contains("nvme nvme0: in use by dm-0\n"))
        #expect(nvme.isBound)
        try machine.remove("dm-0")
        try nvme.remove()
        // Every page went back: the target's reserve and the request pages.
        #expect(machine.ram.unusedPages == (try cryptDevices()).ram.unusedPages)
    }

    /// dm-crypt's out bio pages: one mempool_alloc() each before v6.5, compound since.
    @Test func theKernelChoosesThePageAllocation() throws {
        let devices = try cryptDevices()
        try devices.add("nvme nvme0 capacity=8M")
        let cases = [("kernel=6.1", "single"), ("kernel=6.12", "compound"), ("kernel=6.18", "compound"), ("kernel=6.1 page_alloc=bulk", "bulk"), ("", "single")]
        for (i, (keys, mode)) in cases.enumerated() {
            let crypt = try devices.add("dm-crypt dm-\(i) lower=nvme0 key=\(cryptKey) \(keys)")
            #expect(crypt.parameters.contains { $0 == ("page_alloc", mode) }, "\(keys)")
            try devices.remove("dm-\(i)")
        }
    }

    @Test func badTablesAreRefusedWithTheKernelsMessages() throws {
        let machine = try cryptMachine()
        let add = { (line: String) throws(Errno) in _ = try machine.add(line) }
        #expect(throws: Errno.invalidArgument) { try add("dm-crypt dm-1 lower=nvme0") }
        #expect(throws: Errno.noDevice) { try add("dm-crypt dm-1 lower=nvme9 key=\(cryptKey)") }
        #expect(throws: Errno.noDevice) { try add("dm-crypt dm-1 lower=dm-1 key=\(cryptKey)") }
        #expect(throws: Errno.invalidArgument) { try add("dm-crypt dm-1 lower=nvme0 key=zz") }
        #expect(throws: Errno.invalidArgument) { try add("dm-crypt dm-1 lower=nvme0 key=00112233") }
        #expect(throws: Errno.invalidArgument) { try add("dm-crypt dm-1 lower=nvme0 key=\(cryptKey) cipher=aes-cbc-essiv:sha256") }
        #expect(throws: Errno.invalidArgument) { try add("dm-crypt dm-1 lower=nvme0 key=\(cryptKey) page_alloc=slab") }
        #expect(throws: Errno.invalidArgument) { try add("dm-crypt crypt0 lower=nvme0 key=\(cryptKey)") }
        let kmsg = machine.kmsg
        #expect(kmsg.contains("device-mapper: table: 253:1: crypt: Error decoding and setting key (-EINVAL)\n"))
        #expect(kmsg.contains("device-mapper: table: 253:1: crypt: Device lookup failed (-ENODEV)\n"))
        #expect(machine.device("dm-1") == nil && machine.device("crypt0") == nil)
        #expect(machine.device("nvme0")?.holders == ["dm-0"])
        #expect(machine.device("dm-0")?.parameters.first { $0.name == "key" }?.value == "<512-bit key>")
    }
}

/// crypt_alloc_buffer() against the per-client cap: a 64 MiB machine's 2% is below the
/// floor, so the cap is 4096 pages; what exceeds it comes from the reserve.
@Suite struct CryptPageAllocatorTests {
    func allocator(_ mode: CryptPageAlloc) throws -> (CryptPageAllocator, PhysicalMemory) {
        let ram = try PhysicalMemory(size: 64 << 20)
        let clients = DMCryptClients(totalPages: 16383)
        clients.add()
        #expect(clients.pagesPerClient.load(ordering: .relaxed) == 4096)
        return (try CryptPageAllocator(ram: ram, mode: mode, clients: clients), ram)
    }

    /// Fills bios of 256 pages until `count`, returning them.
    func bios(_ pages: CryptPageAllocator, _ count: Int) -> [CryptBio] {
        (0..<count).map { _ in
            var bio = CryptBio()
            pages.allocBuffer(&bio, size: 1 << 20)
            return bio
        }
    }

    /// single: the reserve is counted (256), so 15 bios reach 4096 and the 16th is all
    /// reserve; freeing refills the reserve and uncounts the 3840 allocator pages.
    @Test func singlePagesStopAtTheCap() throws {
        let (pages, _) = try allocator(.single)
        #expect(pages.allocatedPages == 256)
        var held = bios(pages, 16)
        #expect(pages.allocatedPages == 4096)
        #expect(pages.pool.statistics.fromReserve == 256)
        #expect(pages.pool.current == 0)
        for i in held.indices { pages.freeBuffer(&held[i]); held[i].deallocate() }
        #expect(pages.pool.current == 256)
        #expect(pages.allocatedPages == 256)
    }

    /// bulk: the reserve is not counted, so 16 bios reach the cap and the 17th is reserve.
    @Test func bulkPagesStopAtTheCap() throws {
        let (pages, _) = try allocator(.bulk)
        #expect(pages.allocatedPages == 0)
        var held = bios(pages, 17)
        #expect(pages.allocatedPages == 4096)
        #expect(pages.pool.statistics.fromReserve == 256)
        for i in held.indices { pages.freeBuffer(&held[i]); held[i].deallocate() }
        #expect(pages.pool.current == 256)
    }

    /// With the page allocator dry and one reserved page held elsewhere, the first
    /// (GFP_NOWAIT) pass gets 255 pages and fails; they go back, and the retry with
    /// __GFP_DIRECT_RECLAIM takes the 255 again and sleeps until the held page comes back.
    /// Reserve pages handed out: 1 + 255 + 256.
    @Test(arguments: CryptPageAlloc.allCases)
    func aFailedNonBlockingPassIsGivenBackAndRetriedBlocking(mode: CryptPageAlloc) throws {
        let (pages, ram) = try allocator(mode)
        while ram.allocPages(order: 0) != nil {}
        let held = try #require(pages.pool.alloc(.noWait))
        let done = DispatchSemaphore(value: 0)
        let count = PthreadMutex(0)
        Thread.detachNewThread {  // it sleeps in mempool_alloc: a thread of its own, not a dispatch worker
            var bio = CryptBio()
            pages.allocBuffer(&bio, size: 1 << 20)
            count.withLock { $0 = bio.used.reduce(0) { $0 + 1 << $1.order } }
            pages.freeBuffer(&bio)
            bio.deallocate()
            done.signal()
        }
        let deadline = ContinuousClock.now + .seconds(10)
        while pages.pool.statistics.sleeping == 0 && ContinuousClock.now < deadline { usleep(1000) }
        #expect(pages.pool.statistics.sleeping == 1 && pages.pool.current == 0)
        pages.pool.free(held)
        #expect(done.wait(timeout: .now() + 10) == .success)
        #expect(count.withLock { $0 } == 256)
        let stats = pages.pool.statistics
        #expect(stats.fromReserve == 1 + 255 + 256)
        #expect(stats.failed == 1 && stats.waits == 1)
        #expect(pages.pool.current == 256)
    }

    /// compound: 15 order-8 blocks take the count from 256 to 4096; the 16th bio may not
    /// take any high-order block and gets single pages from the reserve.
    @Test func compoundBlocksRespectTheCap() throws {
        let (pages, ram) = try allocator(.compound)
        let before = ram.unusedPages
        var held = bios(pages, 16)
        #expect(pages.compoundBlocks.load(ordering: .relaxed) == 15)
        #expect(pages.allocatedPages == 4096)
        #expect(pages.pool.statistics.fromReserve == 256)
        #expect(held[15].count == 256 && held[0].count == 1 && held[0].blocks[0].order == 8)
        for i in held.indices { pages.freeBuffer(&held[i]); held[i].deallocate() }
        #expect(ram.unusedPages == before)
    }
}

@Suite struct CryptKeyTests {
    @Test func theKeyIsParsedIntoAPageCoreDumpsLeaveOut() throws {
        let key = try CryptKey(hex: "00ff10Ab")
        #expect(try key.withUnsafeBytes { (bytes) throws(Errno) in Array(bytes) } == [0x00, 0xff, 0x10, 0xab])
        // /proc/self/smaps: the mapping holding it has VmFlags "dd" (VM_DONTDUMP). Read with
        // stdio: procfs files have no size to read up to.
        let file = try #require(fopen("/proc/self/smaps", "r"))
        defer { fclose(file) }
        var line = [CChar](repeating: 0, count: 4096)
        var inside = false, flags: String?
        while flags == nil, fgets(&line, Int32(line.count), file) != nil {
            let text = String(cString: line)
            let first = text.prefix { $0 != " " }
            if first.contains("-"), !first.hasSuffix(":") {
                let ends = first.split(separator: "-").compactMap { UInt($0, radix: 16) }
                inside = ends.count == 2 && ends[0] <= key.address && key.address < ends[1]
            } else if inside, first == "VmFlags:" {
                flags = text
            }
        }
        #expect(flags?.split(whereSeparator: \.isWhitespace).contains("dd") == true)
        for bad in ["", "0", "zz", "0g", "-1"] { #expect(throws: Errno.invalidArgument) { try CryptKey(hex: bad) } }
    }
}

@Suite struct AESXTSTests {
    /// The construction on libcrypto's ECB against libcrypto's own XTS (EVP_aes_*_xts, one
    /// sector per IV), for sectors far into the disk; 48-byte keys, for which libcrypto
    /// has no XTS, against the same construction reversed.
    @Test(arguments: [32, 48, 64])
    func theConstructionIsLibcryptosXTS(keyBytes: Int) throws {
        let key = (0..<keyBytes).map { UInt8(truncatingIfNeeded: $0 * 29 + 3) }
        let cipher = try AESXTS(key: key)
        let bytes = 3 * AESXTS.run + 1024
        let data = (0..<bytes).map { DataPattern.byte(5, at: $0) }
        let sector: UInt64 = 1 << 40 + 5
        let scratch = AESXTS.Scratch(bytes: bytes)
        var buffer = data
        #expect(buffer.withUnsafeMutableBytes { (try? cipher.encrypt($0, sector: sector, scratch: scratch)) != nil })
        #expect(buffer != data)
        if keyBytes != 48 { #expect(buffer == Self.libcryptoXTS(data, key: key, sector: sector)) }
        #expect(buffer.withUnsafeMutableBytes { (try? cipher.decrypt($0, sector: sector, scratch: scratch)) != nil })
        #expect(buffer == data)
    }

    /// EVP_aes_128_xts or EVP_aes_256_xts, each sector with its IV.
    static func libcryptoXTS(_ data: [UInt8], key: [UInt8], sector: UInt64) -> [UInt8] {
        var out = data
        let ctx = EVP_CIPHER_CTX_new()
        defer { EVP_CIPHER_CTX_free(ctx) }
        _ = EVP_EncryptInit_ex(ctx, key.count == 32 ? EVP_aes_128_xts() : EVP_aes_256_xts(), nil, key, nil)
        out.withUnsafeMutableBytes { buffer in
            let p = buffer.baseAddress!.assumingMemoryBound(to: UInt8.self)
            var length: Int32 = 0
            for s in 0..<(data.count / 512) {
                var iv = [UInt8](repeating: 0, count: 16)
                withUnsafeBytes(of: (sector + UInt64(s)).littleEndian) { iv.replaceSubrange(0..<8, with: $0) }
                _ = EVP_EncryptInit_ex(ctx, nil, nil, nil, iv)
                _ = EVP_EncryptUpdate(ctx, p + s * 512, &length, p + s * 512, 512)
            }
        }
        return out
    }
}

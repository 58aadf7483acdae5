// A dm-crypt target stacked on another device's disk: dm-N maps sector s to sector s of
// the lower device, encrypting writes into a freshly allocated "out" bio (whose pages come
// from the page pool as page_alloc says) and decrypting reads in place after the lower
// device has filled the caller's pages. Sector s is encrypted with IV s (plain64).
//
//   add_device "dm-crypt dm-0 lower=<device> key=<hex> [cipher=aes-xts-plain64]
//               [page_alloc=single|bulk|compound]"     (cipher=cipher_null-ecb takes key=-)
import Block
import DMA
import Drivers
import Lib
import Locking
import Mempool
import PhysicalMemory
import SystemPackage

public final class DMCryptDriver: DiskDriver {
    public static let name = "dm-crypt"
    public static let bus = "virtual"
    /// aes-xts-plain64, and cipher_null-ecb (no encryption: the kernel's test cipher, which
    /// leaves the allocation and I/O path alone to be measured).
    static let ciphers = ["aes-xts-plain64", "cipher_null-ecb"]
    /// The largest bio dm-crypt encrypts at once (crypt_map splits writes there).
    static let maxIO = CryptPageAllocator.bioMaxVecs * PhysicalMemory.pageSize

    private struct Settings {
        var lower = ""
        var key: CryptKey?
        var cipher = DMCryptDriver.ciphers[0]
        var pageAlloc = CryptPageAlloc.single
    }

    /// What probe set up.
    private final class Target: Sendable {
        let queue: BlockQueue
        let lowerQueue: BlockQueue
        /// nil for cipher_null.
        let cipher: AESXTS?
        let pages: CryptPageAllocator
        let clients: DMCryptClients
        /// Per-request scratch, reused: a request allocates nothing on the heap.
        let contexts = PthreadMutex<[UnsafeSendable<CryptContext>]>([])

        init(queue: BlockQueue, lowerQueue: BlockQueue, cipher: AESXTS?, pages: CryptPageAllocator, clients: DMCryptClients) {
            self.queue = queue
            self.lowerQueue = lowerQueue
            self.cipher = cipher
            self.pages = pages
            self.clients = clients
        }
    }

    private let settings = PthreadMutex(Settings())
    private let target = PthreadMutex<Target?>(nil)
    /// The machine's dm-crypt targets, which share 2% of its RAM.
    private let clients: DMCryptClients

    init(clients: DMCryptClients) { self.clients = clients }

    /// Makes a machine's dm-crypt targets, which share the 2% of its `totalPages`.
    public static func factory(totalPages: Int) -> Devices.Factory {
        let clients = DMCryptClients(totalPages: totalPages)
        return { DMCryptDriver(clients: clients) }
    }

    public var queue: BlockQueue? { target.withLock { $0?.queue } }

    public var parameters: [(name: String, value: String)] {
        settings.withLock { s in
            // The key is not shown back (dmsetup shows it only when asked, to root).
            [("lower", s.lower), ("key", s.key.map { "<\($0.count * 8)-bit key>" } ?? ""),
             ("cipher", s.cipher), ("page_alloc", s.pageAlloc.rawValue)]
        }
    }

    /// Out bio pages one mempool_alloc() at a time before v6.5, compound pages since.
    public func adopt(_ kernel: KernelVersion) {
        settings.withLock { $0.pageAlloc = kernel == .v6_1 ? .single : .compound }
    }

    public func setParameter(_ name: String, _ value: String) throws(Errno) {
        switch name {
        case "lower":
            guard !value.isEmpty, !value.contains("/") else { throw .invalidArgument }
            settings.withLock { $0.lower = value }
        case "key":
            let key = value == "-" ? nil : try CryptKey(hex: value)
            if let key { _ = try key.withUnsafeBytes { (bytes) throws(Errno) in try AESXTS(key: bytes) } }
            settings.withLock { $0.key = key }
        case "cipher":
            guard Self.ciphers.contains(value) else { throw .invalidArgument }
            settings.withLock { $0.cipher = value }
        case "page_alloc":
            guard let mode = CryptPageAlloc(rawValue: value) else { throw .invalidArgument }
            settings.withLock { $0.pageAlloc = mode }
        default:
            throw .invalidArgument
        }
    }

    // MARK: - Probe and remove (crypt_ctr / crypt_dtr)

    public func probe(_ context: ProbeContext) throws(Errno) {
        let device = context.device
        let log = device.ram.log
        let name = device.name
        guard name.hasPrefix("dm-"), let minor = Int(name.dropFirst(3)), String(minor) == name.dropFirst(3) else {
            log.printk(.err, "device-mapper: ioctl: \(name): dm devices are named dm-<minor>")
            throw .invalidArgument
        }
        let fail = { (error: String, errno: Errno) -> Errno in
            log.printk(.err, "device-mapper: table: 253:\(minor): crypt: \(error) (-\(Self.errnoName(errno)))")
            return errno
        }
        let s = settings.withLock { $0 }
        let cipher: AESXTS?
        if s.cipher == "cipher_null-ecb" {
            // The null cipher takes no key ("-" in a table).
            guard s.key == nil else { throw fail("Error decoding and setting key", .invalidArgument) }
            cipher = nil
        } else {
            guard let key = s.key, let xts = try? key.withUnsafeBytes({ (bytes) throws(Errno) in try AESXTS(key: bytes) }) else {
                throw fail("Error decoding and setting key", .invalidArgument)
            }
            cipher = xts
        }
        let lowerQueue: BlockQueue
        do { lowerQueue = try context.hold(disk: s.lower) } catch { throw fail("Device lookup failed", .noDevice) }
        clients.add()
        let pages: CryptPageAllocator
        do {
            pages = try CryptPageAllocator(ram: device.ram, mode: s.pageAlloc, clients: clients)
        } catch {
            clients.remove()
            throw fail("Cannot allocate page mempool", .noMemory)
        }
        let limits = BlockLimits(maxSegments: CryptPageAllocator.bioMaxVecs, maxSegmentSize: Self.maxIO, maxTransfer: Self.maxIO)
        let queue = BlockQueue(device: device, capacity: lowerQueue.capacity, limits: limits, driver: self)
        target.withLock {
            $0 = Target(queue: queue, lowerQueue: lowerQueue, cipher: cipher, pages: pages, clients: clients)
        }
    }

    public func stop() { queue?.freeze() }

    public func remove(_ device: Device) {
        guard let target = target.withLock({ $0.take() }) else { return }
        target.contexts.withLock { contexts in
            for context in contexts { context.value.deallocate() }
            contexts.removeAll()
        }
        target.pages.destroy { device.ram.log.printk(.warning, "device-mapper: crypt: \(device.name): \($0)") }
        target.clients.remove()
    }

    /// A flush goes down to the disk under the target.
    public func flush() throws(Errno) {
        guard let target = target.withLock({ $0 }) else { throw .noDevice }
        try target.lowerQueue.flush()
    }

    private static func errnoName(_ errno: Errno) -> String {
        switch errno {
        case .invalidArgument: "EINVAL"
        case .noMemory: "ENOMEM"
        default: "ENODEV"
        }
    }

    // MARK: - I/O (crypt_map, kcryptd_crypt_write_convert, kcryptd_crypt_read_convert)

    /// crypt_map(): a bio of more than BIO_MAX_VECS pages is taken a piece of that size at a
    /// time (dm_accept_partial_bio()); the pieces share the bio's pages. The bio is done
    /// (written through or read and decrypted) when it returns: dm-crypt's own work runs in
    /// the submitter (no kcryptd queue), so its bios are never in flight together.
    public func submitBio(_ bio: RequestBuffer, lba: Int, write: Bool, on queue: BlockQueue) throws(Errno) -> Submission {
        guard let target = target.withLock({ $0 }) else { throw .noDevice }
        let context = target.contexts.withLock { $0.popLast()?.value } ?? CryptContext(ram: queue.device.ram, limits: queue.limits)
        defer { target.contexts.withLock { $0.append(UnsafeSendable(context)) } }
        guard bio.length > Self.maxIO else { return try map(target, context, bio, lba: lba, write: write) }
        var done = 0, sent = Submission()
        defer { context.piece.release() }
        while done < bio.length {
            let count = min(Self.maxIO, bio.length - done)
            context.piece.borrow(from: bio, start: done, count: count)
            sent += try map(target, context, context.piece, lba: lba + done / BlockLimits.sectorSize, write: write)
            done += count
        }
        return sent
    }

    private func map(_ target: Target, _ context: CryptContext, _ buffer: RequestBuffer, lba: Int, write: Bool) throws(Errno) -> Submission {
        let length = buffer.length
        let data = UnsafeMutableRawBufferPointer(rebasing: context.data[0..<length])
        if write {
            target.pages.allocBuffer(&context.bio, size: length)
            defer { target.pages.freeBuffer(&context.bio) }
            buffer.withPieces(from: 0, count: length) { memory, at, count in
                (data.baseAddress! + at).copyMemory(from: memory, byteCount: count)
            }
            // Encrypted straight into the out bio's pages (whole sectors each: a page or a
            // compound page).
            var at = 0
            for (phys, order) in context.bio.used {
                let count = min(PhysicalMemory.pageSize << order, length - at)
                let page = UnsafeMutableRawBufferPointer(start: target.queue.device.ram.virt(phys), count: count)
                if let cipher = target.cipher {
                    try cipher.encrypt(data.baseAddress! + at, into: page, sector: UInt64(lba + at / BlockLimits.sectorSize), scratch: context.scratch)
                } else {
                    page.baseAddress!.copyMemory(from: data.baseAddress! + at, byteCount: count)
                }
                at += count
            }
            context.out.borrow(blocks: context.bio.used, length: length)
            defer { context.out.release() }
            return try submitToLower(target, context, context.out, lba: lba, write: true)
        }
        let done = try submitToLower(target, context, buffer, lba: lba, write: false)
        guard let cipher = target.cipher else { return done }
        // In place, piece by piece, as kcryptd_crypt_read_convert() does, when every piece
        // is whole sectors; through the request context's buffer otherwise.
        var whole = true
        buffer.withPieces(from: 0, count: length) { _, at, count in
            whole = whole && at % BlockLimits.sectorSize == 0 && count % BlockLimits.sectorSize == 0
        }
        if whole {
            try buffer.withPieces(from: 0, count: length) { (memory, at, count) throws(Errno) in
                try cipher.decrypt(UnsafeMutableRawBufferPointer(start: memory, count: count),
                                   sector: UInt64(lba + at / BlockLimits.sectorSize), scratch: context.scratch)
            }
            return done
        }
        buffer.withPieces(from: 0, count: length) { memory, at, count in
            (data.baseAddress! + at).copyMemory(from: memory, byteCount: count)
        }
        try cipher.decrypt(data, sector: UInt64(lba), scratch: context.scratch)
        buffer.withPieces(from: 0, count: length) { memory, at, count in
            memory.copyMemory(from: data.baseAddress! + at, byteCount: count)
        }
        return done
    }

    /// The clone goes to the lower device, whose queue splits it to its limits: dm-0 did one
    /// request, the disk under it what its queue made of it.
    private func submitToLower(_ target: Target, _ context: CryptContext, _ source: RequestBuffer, lba: Int, write: Bool) throws(Errno) -> Submission {
        let lower = target.lowerQueue
        return try lower.enter { () throws(Errno) -> Submission in
            do throws(Errno) {
                let sent = try lower.submit(source, lba: lba, write: write)
                lower.stats.account(ios: sent.requests, bytes: source.length, bounced: sent.bounced, errors: 0)
                return Submission(requests: 1, bounced: sent.bounced)
            } catch {
                lower.stats.account(ios: 0, bytes: 0, bounced: 0, errors: 1)
                throw error
            }
        }
    }

    // MARK: - What the device shows

    public var stats: [(name: String, value: String)] {
        guard let target = target.withLock({ $0 }) else { return [] }
        let pages = target.pages
        let bios = pages.bios.load(ordering: .relaxed)
        let nanoseconds = pages.allocNanoseconds.load(ordering: .relaxed)
        let perBio = bios == 0 ? 0 : Double(nanoseconds) / Double(bios) / 1000
        return [
            ("page_alloc", pages.mode.rawValue), ("n_allocated_pages", String(pages.allocatedPages)),
            ("pages_per_client", String(target.clients.pagesPerClient.load(ordering: .relaxed))), ("alloc_bios", String(bios)),
            ("alloc_us_per_bio", String((perBio * 10).rounded() / 10)),
            ("compound_blocks", String(pages.compoundBlocks.load(ordering: .relaxed))),
        ]
    }

    /// `mempool`: the page pool's reserve and what came from it.
    public var files: [DriverFile] {
        [DriverFile("mempool") { [self] () throws(Errno) in
            guard let pool = target.withLock({ $0?.pages.pool }) else { throw .noDevice }
            let c = pool.statistics
            return [
                ("pool", "page_pool"), ("min_nr", String(pool.minimum)), ("curr_nr", String(pool.current)),
                ("alloc_total", String(c.allocated)), ("alloc_from_reserve", String(c.fromReserve)), ("alloc_waits", String(c.waits)),
                ("alloc_failed", String(c.failed)), ("free_to_reserve", String(c.refilled)),
            ]
        }]
    }
}

/// One request's working memory: the data being converted, the cipher's scratch, the
/// out bio's page list, and the request descriptions handed to the lower queue.
final class CryptContext {
    let data: UnsafeMutableRawBufferPointer
    let scratch: AESXTS.Scratch
    var bio = CryptBio()
    let out: RequestBuffer
    let piece: RequestBuffer

    init(ram: PhysicalMemory, limits: BlockLimits) {
        data = .allocate(byteCount: DMCryptDriver.maxIO, alignment: 16)
        scratch = AESXTS.Scratch(bytes: DMCryptDriver.maxIO)
        out = RequestBuffer(ram: ram, limits: limits)
        piece = RequestBuffer(ram: ram, limits: limits)
    }

    func deallocate() {
        data.deallocate()
        bio.deallocate()
    }
}

// What an emulated disk keeps its sectors in: sparse RAM or a file, created sparse when
// missing, so that data written survives a daemon restart. The emulated controller moves
// bytes between these and emulated RAM; both are safe to use from several threads at once.
import Glibc
import SystemPackage

/// The disks' logical block: what an LBA counts.
public enum LBA {
    public static let size = 512
}

public protocol BackingStore: AnyObject, Sendable {
    var capacity: Int { get }
    /// Store bytes [offset, offset + count) into `memory` (the controller's DMA write).
    func read(into memory: UnsafeMutableRawPointer, offset: Int, count: Int) throws(Errno)
    /// `memory` into store bytes [offset, offset + count) (the controller's DMA read).
    func write(from memory: UnsafeRawPointer, offset: Int, count: Int) throws(Errno)
    /// What a FLUSH (SYNCHRONIZE CACHE) makes durable.
    func flush() throws(Errno)
    /// Where the bytes live, for the stats file.
    var description: String { get }
}

/// A disk in memory of its own. This is the disk's medium, not the machine's RAM (which
/// only PhysicalMemory maps): its own anonymous MAP_NORESERVE mapping, so a 1 GiB disk
/// costs only the sectors written, untouched ones read as zeros, and what the driver's
/// DMA moves is copied between two separate memories, as it is between RAM and a disk.
public final class RAMStore: BackingStore, @unchecked Sendable {  // the mapping is fixed; bytes are the disk's
    public let capacity: Int
    private let base: UnsafeMutableRawPointer

    public init(capacity: Int) throws(Errno) {
        guard let base = mmap(nil, capacity, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0),
              base != MAP_FAILED
        else { throw Errno(rawValue: errno) }
        self.capacity = capacity
        self.base = base
    }

    deinit { munmap(base, capacity) }

    public func read(into memory: UnsafeMutableRawPointer, offset: Int, count: Int) throws(Errno) {
        memory.copyMemory(from: base + offset, byteCount: count)
    }

    public func write(from memory: UnsafeRawPointer, offset: Int, count: Int) throws(Errno) {
        (base + offset).copyMemory(from: memory, byteCount: count)
    }

    public func flush() throws(Errno) {}

    public var description: String { "ram" }
}

public final class FileStore: BackingStore {
    public let capacity: Int
    public let path: String
    private let descriptor: FileDescriptor

    /// Opens (or creates, sparse) `path` and extends it to `capacity` when shorter; a
    /// longer file keeps its tail, unused.
    public init(path: String, capacity: Int) throws(Errno) {
        let descriptor: FileDescriptor
        do {
            descriptor = try FileDescriptor.open(FilePath(path), .readWrite, options: [.create, .closeOnExec], permissions: [.ownerReadWrite])
        } catch let error as Errno {
            throw error
        } catch {
            throw .ioError
        }
        var info = stat()
        guard fstat(descriptor.rawValue, &info) == 0 else {
            let error = Errno(rawValue: errno)
            try? descriptor.close()
            throw error
        }
        guard info.st_mode & S_IFMT == S_IFREG else {
            try? descriptor.close()
            throw .invalidArgument
        }
        if Int(info.st_size) < capacity, ftruncate(descriptor.rawValue, off_t(capacity)) != 0 {
            let error = Errno(rawValue: errno)
            try? descriptor.close()
            throw error
        }
        self.capacity = capacity
        self.path = path
        self.descriptor = descriptor
    }

    deinit { try? descriptor.close() }

    public func read(into memory: UnsafeMutableRawPointer, offset: Int, count: Int) throws(Errno) {
        try whole(count) { done in pread(descriptor.rawValue, memory + done, count - done, off_t(offset + done)) }
    }

    public func write(from memory: UnsafeRawPointer, offset: Int, count: Int) throws(Errno) {
        try whole(count) { done in pwrite(descriptor.rawValue, memory + done, count - done, off_t(offset + done)) }
    }

    /// Repeats a short pread/pwrite until `count` bytes are done; EIO at the file's end.
    private func whole(_ count: Int, _ call: (Int) -> Int) throws(Errno) {
        var done = 0
        while done < count {
            let n = call(done)
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { throw n < 0 ? Errno(rawValue: errno) : .ioError }
            done += n
        }
    }

    public func flush() throws(Errno) {
        guard fdatasync(descriptor.rawValue) == 0 else { throw Errno(rawValue: errno) }
    }

    public var description: String { path }
}

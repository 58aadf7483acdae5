// What an emulated disk keeps its sectors in: sparse RAM (an anonymous MAP_NORESERVE
// mapping: untouched sectors read as zeros and cost nothing) or a file, created sparse when
// missing, so that data written survives a daemon restart. The emulated controller moves
// bytes between these and emulated RAM; both are safe to use from several threads at once.
import Glibc
import SystemPackage

protocol BackingStore: AnyObject, Sendable {
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

final class RAMStore: BackingStore, @unchecked Sendable {  // the mapping is fixed; bytes are the disk's
    let capacity: Int
    private let base: UnsafeMutableRawPointer

    init(capacity: Int) throws(Errno) {
        guard let base = mmap(nil, capacity, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0),
              base != MAP_FAILED
        else { throw Errno(rawValue: errno) }
        self.capacity = capacity
        self.base = base
    }

    deinit { munmap(base, capacity) }

    func read(into memory: UnsafeMutableRawPointer, offset: Int, count: Int) throws(Errno) {
        memory.copyMemory(from: base + offset, byteCount: count)
    }

    func write(from memory: UnsafeRawPointer, offset: Int, count: Int) throws(Errno) {
        (base + offset).copyMemory(from: memory, byteCount: count)
    }

    func flush() throws(Errno) {}

    var description: String { "ram" }
}

final class FileStore: BackingStore {
    let capacity: Int
    let path: String
    private let descriptor: FileDescriptor

    /// Opens (or creates, sparse) `path` and extends it to `capacity` when shorter; a
    /// longer file keeps its tail, unused.
    init(path: String, capacity: Int) throws(Errno) {
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

    func read(into memory: UnsafeMutableRawPointer, offset: Int, count: Int) throws(Errno) {
        try whole(count) { done in pread(descriptor.rawValue, memory + done, count - done, off_t(offset + done)) }
    }

    func write(from memory: UnsafeRawPointer, offset: Int, count: Int) throws(Errno) {
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

    func flush() throws(Errno) {
        guard fdatasync(descriptor.rawValue) == 0 else { throw Errno(rawValue: errno) }
    }

    var description: String { path }
}

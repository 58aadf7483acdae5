// The low-level request handlers. Each answers its request exactly once; the node comes
// from the inode table, the server from the session's userdata.
import CFuse3
import ControlFS
import Glibc
import SystemPackage

/// Kernel caching of entries and attributes; changes are invalidated explicitly.
private let cacheSeconds = 1.0

extension FUSEServer {
    static func server(_ req: fuse_req_t?) -> FUSEServer {
        Unmanaged<FUSEServer>.fromOpaque(fuse_req_userdata(req)!).takeUnretainedValue()
    }

    func attributes(_ node: any ControlNode, _ ino: UInt64) -> stat {
        var attr = stat()
        attr.st_ino = UInt(ino)
        if node is ControlDirectory {
            attr.st_mode = S_IFDIR | mode_t(node.mode)
            attr.st_nlink = 2
        } else if let block = node as? ControlBlockFile {
            attr.st_mode = S_IFREG | mode_t(node.mode)
            attr.st_nlink = 1
            attr.st_size = off_t(block.size())
        } else if node is ControlStream {
            // A pipe-like file has no size, as tracefs's trace_pipe.
            attr.st_mode = S_IFREG | mode_t(node.mode)
            attr.st_nlink = 1
        } else {
            // A nominal page, as sysfs reports for every attribute.
            attr.st_mode = S_IFREG | mode_t(node.mode)
            attr.st_nlink = 1
            attr.st_size = 4096
        }
        attr.st_uid = getuid()
        attr.st_gid = getgid()
        attr.st_blksize = 4096
        attr.st_atim = mountTime
        attr.st_mtim = mountTime
        attr.st_ctim = mountTime
        return attr
    }

    /// Answers readdir(plus) from the listing opendir took, from `offset` while entries fit.
    /// `add(item, buffer, room, next offset)` writes one entry and returns its size; with a
    /// nil buffer it only sizes it (and must change nothing: readdirplus counts a lookup
    /// only for an entry that goes out).
    static func replyListing(
        _ req: fuse_req_t?, _ fi: UnsafeMutablePointer<fuse_file_info>?, _ size: Int, _ offset: off_t,
        _ add: (Handle.Entry, UnsafeMutablePointer<CChar>?, Int, off_t) -> Int
    ) {
        guard let fi, case .directory(let listing)? = server(req).handles.get(fi.pointee.fh) else {
            fuse_reply_err(req, EBADF)
            return
        }
        let buffer = UnsafeMutablePointer<CChar>.allocate(capacity: size)
        defer { buffer.deallocate() }
        var used = 0
        var index = Int(max(offset, 0))
        while index < listing.count, add(listing[index], nil, 0, 0) <= size - used {
            used += add(listing[index], buffer + used, size - used, off_t(index + 1))
            index += 1
        }
        fuse_reply_buf(req, buffer, used)
    }

    /// The handlers libfuse calls, one function each.
    static func operations() -> fuse_lowlevel_ops {
        var ops = fuse_lowlevel_ops()
        ops.lookup = { FUSEServer.lookup($0, $1, $2) }
        ops.forget = { req, ino, count in
            FUSEServer.server(req).inodes.forget(ino, count)
            fuse_reply_none(req)
        }
        ops.forget_multi = { req, count, forgets in
            let server = FUSEServer.server(req)
            for i in 0..<count { server.inodes.forget(forgets![i].ino, forgets![i].nlookup) }
            fuse_reply_none(req)
        }
        ops.getattr = { req, ino, _ in FUSEServer.getattr(req, ino) }
        ops.setattr = { req, ino, _, toSet, _ in FUSEServer.setattr(req, ino, toSet) }
        ops.open = { FUSEServer.open($0, $1, $2) }
        ops.read = { req, _, size, offset, fi in FUSEServer.read(req, size, offset, fi) }
        ops.write = { req, _, buffer, size, offset, fi in FUSEServer.write(req, buffer, size, offset, fi) }
        ops.release = { req, _, fi in FUSEServer.release(req, fi) }
        ops.fsync = { req, _, _, fi in FUSEServer.fsync(req, fi) }
        ops.ioctl = { req, _, cmd, _, fi, flags, inBuffer, inSize, outSize in
            FUSEServer.ioctl(req, cmd, fi, flags, inBuffer, inSize, outSize)
        }
        ops.opendir = { FUSEServer.opendir($0, $1, $2) }
        ops.readdir = { req, _, size, offset, fi in FUSEServer.readdir(req, size, offset, fi) }
        ops.readdirplus = { req, _, size, offset, fi in FUSEServer.readdirplus(req, size, offset, fi) }
        ops.releasedir = { req, _, fi in FUSEServer.release(req, fi) }
        ops.statfs = { req, _ in FUSEServer.statfs(req) }
        // The tree's shape is the machine's: nothing is created, removed or renamed by
        // file operations, as in sysfs.
        ops.mkdir = { req, _, _, _ in fuse_reply_err(req, EPERM) }
        ops.mknod = { req, _, _, _, _ in fuse_reply_err(req, EPERM) }
        ops.create = { req, _, _, _, _ in fuse_reply_err(req, EPERM) }
        ops.unlink = { req, _, _ in fuse_reply_err(req, EPERM) }
        ops.rmdir = { req, _, _ in fuse_reply_err(req, EPERM) }
        ops.rename = { req, _, _, _, _, _ in fuse_reply_err(req, EPERM) }
        ops.symlink = { req, _, _, _ in fuse_reply_err(req, EPERM) }
        ops.link = { req, _, _, _ in fuse_reply_err(req, EPERM) }
        return ops
    }

    static func lookup(_ req: fuse_req_t?, _ parent: fuse_ino_t, _ name: UnsafePointer<CChar>?) {
        let server = server(req)
        guard let directory = server.inodes.node(parent) as? ControlDirectory else {
            fuse_reply_err(req, ENOTDIR)
            return
        }
        guard let name, let child = directory.child(String(cString: name)) else {
            fuse_reply_err(req, ENOENT)
            return
        }
        let ino = server.inodes.lookedUp(child)
        var entry = fuse_entry_param()
        entry.ino = ino
        entry.attr = server.attributes(child, ino)
        entry.attr_timeout = cacheSeconds
        entry.entry_timeout = cacheSeconds
        fuse_reply_entry(req, &entry)
    }

    static func getattr(_ req: fuse_req_t?, _ ino: fuse_ino_t) {
        let server = server(req)
        guard let node = server.inodes.node(ino) else {
            fuse_reply_err(req, ENOENT)
            return
        }
        var attr = server.attributes(node, ino)
        fuse_reply_attr(req, &attr, cacheSeconds)
    }

    /// Truncation to 0 (O_TRUNC, `: > file`) and time updates (touch) are accepted on
    /// writable attributes and change nothing; mode and ownership are fixed. A disk keeps
    /// its size, as a block device ignores O_TRUNC.
    static func setattr(_ req: fuse_req_t?, _ ino: fuse_ino_t, _ toSet: Int32) {
        let server = server(req)
        guard let node = server.inodes.node(ino) else {
            fuse_reply_err(req, ENOENT)
            return
        }
        let accepted = FUSE_SET_ATTR_SIZE | FUSE_SET_ATTR_ATIME | FUSE_SET_ATTR_MTIME | FUSE_SET_ATTR_ATIME_NOW
            | FUSE_SET_ATTR_MTIME_NOW | FUSE_SET_ATTR_CTIME
        let attribute = node as? ControlAttribute
        guard toSet & ~accepted == 0, attribute?.isWritable == true || node is ControlBlockFile else {
            fuse_reply_err(req, EPERM)
            return
        }
        if toSet & FUSE_SET_ATTR_SIZE != 0, let attribute {
            do throws(Errno) {
                try attribute.truncated()
            } catch {
                fuse_reply_err(req, error.rawValue)
                return
            }
        }
        var attr = server.attributes(node, ino)
        fuse_reply_attr(req, &attr, cacheSeconds)
    }

    static func open(_ req: fuse_req_t?, _ ino: fuse_ino_t, _ fi: UnsafeMutablePointer<fuse_file_info>?) {
        let server = server(req)
        if let fi, let block = server.inodes.node(ino) as? ControlBlockFile {
            // Every read and write goes to the driver, none to the page cache.
            fi.pointee.fh = server.handles.open(.block(block))
            fi.pointee.direct_io = 1
            fuse_reply_open(req, fi)
            return
        }
        if let fi, let stream = server.inodes.node(ino) as? ControlStream {
            guard fi.pointee.flags & O_ACCMODE == O_RDONLY else {
                fuse_reply_err(req, EACCES)
                return
            }
            // No page cache and no seeking: each read is the stream's next bytes.
            fi.pointee.fh = server.handles.open(.stream(stream, nonBlocking: fi.pointee.flags & O_NONBLOCK != 0))
            fi.pointee.direct_io = 1
            fi.pointee.nonseekable = 1
            fuse_reply_open(req, fi)
            return
        }
        guard let fi, let attribute = server.inodes.node(ino) as? ControlAttribute else {
            fuse_reply_err(req, EISDIR)
            return
        }
        let access = fi.pointee.flags & O_ACCMODE
        let reading = access != O_WRONLY
        let writing = access != O_RDONLY
        guard (!reading || attribute.isReadable), (!writing || attribute.isWritable) else {
            fuse_reply_err(req, EACCES)
            return
        }
        var snapshot: [UInt8] = []
        if reading {
            do throws(Errno) {
                snapshot = try attribute.snapshot()
            } catch {
                fuse_reply_err(req, error.rawValue)
                return
            }
        }
        fi.pointee.fh = server.handles.open(.file(attribute, snapshot: snapshot))
        // Reads must bypass the page cache to see each open's snapshot, and writes are
        // cheaper without it too: a buffered `echo 1 > alloc` costs a page-cache page
        // per write (measured: 3 us more per echo than fuse_hello.c, which is direct_io).
        fi.pointee.direct_io = 1
        fuse_reply_open(req, fi)
    }

    static func read(_ req: fuse_req_t?, _ size: Int, _ offset: off_t, _ fi: UnsafeMutablePointer<fuse_file_info>?) {
        let server = server(req)
        if let fi, case .block(let block)? = server.handles.get(fi.pointee.fh) {
            let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: size, alignment: 4096)
            defer { buffer.deallocate() }
            do throws(Errno) {
                let n = try block.read(buffer, Int(offset))
                fuse_reply_buf(req, buffer.baseAddress, n)
            } catch {
                fuse_reply_err(req, error.rawValue)
            }
            return
        }
        if let fi, case .stream(let stream, let nonBlocking)? = server.handles.get(fi.pointee.fh) {
            readStream(req, stream, size, nonBlocking: nonBlocking)
            return
        }
        guard let fi, case .file(_, let snapshot)? = server.handles.get(fi.pointee.fh) else {
            fuse_reply_err(req, EBADF)
            return
        }
        let start = min(Int(max(offset, 0)), snapshot.count)
        let end = min(start + size, snapshot.count)
        snapshot.withUnsafeBufferPointer { bytes in
            _ = fuse_reply_buf(req, UnsafeRawPointer(bytes.baseAddress.map { $0 + start }), end - start)
        }
    }

    /// A read that may wait for the stream: it gives up when the reader is interrupted
    /// (a signal: libfuse marks the request) or the server stops.
    static func readStream(_ req: fuse_req_t?, _ stream: ControlStream, _ size: Int, nonBlocking: Bool) {
        let server = server(req)
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: size, alignment: 8)
        defer { buffer.deallocate() }
        do throws(Errno) {
            let n = try stream.read(buffer, nonBlocking) { fuse_req_interrupted(req) != 0 || server.isStopping }
            fuse_reply_buf(req, buffer.baseAddress, n)
        } catch {
            fuse_reply_err(req, error.rawValue)
        }
    }

    static func write(
        _ req: fuse_req_t?, _ buffer: UnsafePointer<CChar>?, _ size: Int, _ offset: off_t, _ fi: UnsafeMutablePointer<fuse_file_info>?
    ) {
        let server = server(req)
        if let fi, case .block(let block)? = server.handles.get(fi.pointee.fh) {
            do throws(Errno) {
                fuse_reply_write(req, try block.write(UnsafeRawBufferPointer(start: buffer, count: size), Int(offset)))
            } catch {
                fuse_reply_err(req, error.rawValue)
            }
            return
        }
        guard let fi, case .file(let attribute, _)? = server.handles.get(fi.pointee.fh) else {
            fuse_reply_err(req, EBADF)
            return
        }
        do throws(Errno) {
            try attribute.write(UnsafeRawBufferPointer(start: buffer, count: size))
            fuse_reply_write(req, size)
        } catch {
            fuse_reply_err(req, error.rawValue)
        }
    }

    /// release and releasedir: the open's handle goes.
    static func release(_ req: fuse_req_t?, _ fi: UnsafeMutablePointer<fuse_file_info>?) {
        if let fi { server(req).handles.release(fi.pointee.fh) }
        fuse_reply_err(req, 0)
    }

    /// A disk's fsync flushes it through its driver; an attribute has nothing to flush.
    static func fsync(_ req: fuse_req_t?, _ fi: UnsafeMutablePointer<fuse_file_info>?) {
        guard let fi, case .block(let block)? = server(req).handles.get(fi.pointee.fh) else {
            fuse_reply_err(req, 0)
            return
        }
        do throws(Errno) {
            try block.flush()
            fuse_reply_err(req, 0)
        } catch {
            fuse_reply_err(req, error.rawValue)
        }
    }

    /// An ioctl on an open attribute. The kernel forwards a file system's ioctls
    /// "restricted": the command's own _IOC_SIZE bytes in and out, which the attribute gets
    /// as one buffer. A directory has none (ENOTTY, as the VFS answers).
    static func ioctl(
        _ req: fuse_req_t?, _ command: UInt32, _ fi: UnsafeMutablePointer<fuse_file_info>?, _ flags: UInt32,
        _ inBuffer: UnsafeRawPointer?, _ inSize: Int, _ outSize: Int
    ) {
        guard flags & UInt32(FUSE_IOCTL_DIR) == 0, let fi, case .file(let attribute, _)? = server(req).handles.get(fi.pointee.fh) else {
            fuse_reply_err(req, ENOTTY)
            return
        }
        let argument = UnsafeMutableRawBufferPointer.allocate(byteCount: max(inSize, outSize), alignment: 8)
        defer { argument.deallocate() }
        argument.initializeMemory(as: UInt8.self, repeating: 0)
        if let inBuffer, inSize > 0 { argument.copyMemory(from: UnsafeRawBufferPointer(start: inBuffer, count: inSize)) }
        do throws(Errno) {
            let result = try attribute.control(command, argument)
            fuse_reply_ioctl(req, result, argument.baseAddress, outSize)
        } catch {
            fuse_reply_err(req, error.rawValue)
        }
    }

    static func opendir(_ req: fuse_req_t?, _ ino: fuse_ino_t, _ fi: UnsafeMutablePointer<fuse_file_info>?) {
        let server = server(req)
        guard let fi, let directory = server.inodes.node(ino) as? ControlDirectory else {
            fuse_reply_err(req, ENOTDIR)
            return
        }
        // glibc's readdir skips entries with inode 0, so every entry gets a number: the
        // one the kernel knows, or a stable one from the node's identity (not yet looked up).
        func number(_ node: any ControlNode) -> UInt64 {
            server.inodes.number(of: node) ?? (UInt64(UInt(bitPattern: ObjectIdentifier(node).hashValue)) | 1 << 63)
        }
        let dots: [Handle.Entry] = [(".", true, ino, nil), ("..", true, InodeTable.root, nil)]
        let listing = dots + directory.children.map { (name: $0.name, isDirectory: $0.node is ControlDirectory, ino: number($0.node), node: $0.node) }
        fi.pointee.fh = server.handles.open(.directory(listing))
        fuse_reply_open(req, fi)
    }

    static func readdir(_ req: fuse_req_t?, _ size: Int, _ offset: off_t, _ fi: UnsafeMutablePointer<fuse_file_info>?) {
        replyListing(req, fi, size, offset) { item, buffer, room, next in
            var attr = stat()
            attr.st_ino = UInt(item.ino)
            attr.st_mode = item.isDirectory ? S_IFDIR : S_IFREG
            return fuse_add_direntry(req, buffer, room, item.name, &attr, next)
        }
    }

    /// Each entry comes with its attributes, and counts as a lookup (not "." and "..",
    /// which go with inode 0 so the kernel does not take them as entries).
    static func readdirplus(_ req: fuse_req_t?, _ size: Int, _ offset: off_t, _ fi: UnsafeMutablePointer<fuse_file_info>?) {
        let server = server(req)
        replyListing(req, fi, size, offset) { item, buffer, room, next in
            var entry = fuse_entry_param()
            if buffer != nil, let node = item.node {
                entry.ino = server.inodes.lookedUp(node)
                entry.attr = server.attributes(node, entry.ino)
                entry.attr_timeout = cacheSeconds
                entry.entry_timeout = cacheSeconds
            } else {
                entry.attr.st_ino = UInt(item.ino)
                entry.attr.st_mode = S_IFDIR
            }
            return fuse_add_direntry_plus(req, buffer, room, item.name, &entry, next)
        }
    }

    static func statfs(_ req: fuse_req_t?) {
        var info = statvfs()
        info.f_bsize = 4096
        info.f_frsize = 4096
        info.f_namemax = 255
        fuse_reply_statfs(req, &info)
    }
}

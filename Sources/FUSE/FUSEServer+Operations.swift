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

    static func operations() -> fuse_lowlevel_ops {
        var ops = fuse_lowlevel_ops()
        ops.lookup = { req, parent, name in
            let server = FUSEServer.server(req)
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
        ops.forget = { req, ino, count in
            FUSEServer.server(req).inodes.forget(ino, count)
            fuse_reply_none(req)
        }
        ops.forget_multi = { req, count, forgets in
            let server = FUSEServer.server(req)
            for i in 0..<count { server.inodes.forget(forgets![i].ino, forgets![i].nlookup) }
            fuse_reply_none(req)
        }
        ops.getattr = { req, ino, _ in
            let server = FUSEServer.server(req)
            guard let node = server.inodes.node(ino) else {
                fuse_reply_err(req, ENOENT)
                return
            }
            var attr = server.attributes(node, ino)
            fuse_reply_attr(req, &attr, cacheSeconds)
        }
        ops.setattr = { req, ino, _, toSet, _ in
            let server = FUSEServer.server(req)
            guard let node = server.inodes.node(ino) else {
                fuse_reply_err(req, ENOENT)
                return
            }
            // Truncation to 0 (O_TRUNC, `: > file`) and time updates (touch) are accepted
            // on writable attributes and change nothing; mode and ownership are fixed.
            let size: Int32 = 1 << 3
            let times: Int32 = (1 << 4) | (1 << 5) | (1 << 7) | (1 << 8) | (1 << 10)
            // A disk keeps its size, as a block device ignores O_TRUNC.
            guard toSet & ~(size | times) == 0, (node as? ControlAttribute)?.isWritable == true || node is ControlBlockFile else {
                fuse_reply_err(req, EPERM)
                return
            }
            var attr = server.attributes(node, ino)
            fuse_reply_attr(req, &attr, cacheSeconds)
        }
        ops.open = { req, ino, fi in
            let server = FUSEServer.server(req)
            if let fi, let block = server.inodes.node(ino) as? ControlBlockFile {
                // Every read and write goes to the driver, none to the page cache.
                fi.pointee.fh = server.handles.open(.block(block))
                fi.pointee.direct_io = 1
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
        ops.read = { req, _, size, offset, fi in
            let server = FUSEServer.server(req)
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
        ops.write = { req, _, buffer, size, offset, fi in
            let server = FUSEServer.server(req)
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
        ops.release = { req, _, fi in
            if let fi { FUSEServer.server(req).handles.release(fi.pointee.fh) }
            fuse_reply_err(req, 0)
        }
        ops.fsync = { req, _, _, fi in
            let server = FUSEServer.server(req)
            guard let fi, case .block(let block)? = server.handles.get(fi.pointee.fh) else {
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
        ops.opendir = { req, ino, fi in
            let server = FUSEServer.server(req)
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
        ops.readdir = { req, _, size, offset, fi in
            FUSEServer.replyListing(req, fi, size, offset) { item, buffer, room, next in
                var attr = stat()
                attr.st_ino = UInt(item.ino)
                attr.st_mode = item.isDirectory ? S_IFDIR : S_IFREG
                return fuse_add_direntry(req, buffer, room, item.name, &attr, next)
            }
        }
        // readdirplus: each entry comes with its attributes, and counts as a lookup (not
        // "." and "..", which go with inode 0 so the kernel does not take them as entries).
        ops.readdirplus = { req, _, size, offset, fi in
            let server = FUSEServer.server(req)
            FUSEServer.replyListing(req, fi, size, offset) { item, buffer, room, next in
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
        ops.releasedir = { req, _, fi in
            if let fi { FUSEServer.server(req).handles.release(fi.pointee.fh) }
            fuse_reply_err(req, 0)
        }
        ops.statfs = { req, _ in
            var info = statvfs()
            info.f_bsize = 4096
            info.f_frsize = 4096
            info.f_namemax = 255
            fuse_reply_statfs(req, &info)
        }
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
}

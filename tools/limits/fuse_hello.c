/*
 * fuse_hello.c - the FUSE floor: the least a libfuse3 server (the high-level API and its
 * default multi-threaded loop) can do to serve what dmaemu's control tree serves, a
 * read-only `pools` file and a writable `alloc` file that takes a number. Timed with
 * fuse_rw.py exactly as dmaemud is.
 *
 *   cc -O2 -o fuse_hello fuse_hello.c $(pkg-config --cflags --libs fuse3)
 *   mkdir -p /tmp/hello && ./fuse_hello /tmp/hello
 *   python3 fuse_rw.py /tmp/hello/pools; python3 fuse_rw.py --write 1 /tmp/hello/alloc
 *   fusermount3 -u /tmp/hello
 */
#define FUSE_USE_VERSION 31
#include <errno.h>
#include <fuse.h>
#include <stdlib.h>
#include <string.h>

static const char listing[] = "poolinfo - 0.1\nchain pool       373959 373984  128 11687\n";

enum file { NONE, ROOT, POOLS, ALLOC };

static enum file which(const char *path) {
    if (strcmp(path, "/") == 0) return ROOT;
    if (strcmp(path, "/pools") == 0) return POOLS;
    if (strcmp(path, "/alloc") == 0) return ALLOC;
    return NONE;
}

static int hello_getattr(const char *path, struct stat *st, struct fuse_file_info *fi) {
    (void)fi;
    memset(st, 0, sizeof *st);
    switch (which(path)) {
    case ROOT: st->st_mode = S_IFDIR | 0755; st->st_nlink = 2; return 0;
    case POOLS: st->st_mode = S_IFREG | 0444; break;
    case ALLOC: st->st_mode = S_IFREG | 0200; break;
    default: return -ENOENT;
    }
    st->st_nlink = 1;
    st->st_size = 4096; /* sysfs's nominal page */
    return 0;
}

static int hello_readdir(const char *path, void *buf, fuse_fill_dir_t fill, off_t off, struct fuse_file_info *fi,
                         enum fuse_readdir_flags flags) {
    (void)off; (void)fi; (void)flags;
    if (which(path) != ROOT) return -ENOTDIR;
    const char *names[] = { ".", "..", "pools", "alloc" };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) fill(buf, names[i], NULL, 0, 0);
    return 0;
}

/* direct_io, as dmaemud opens every file: each read and write reaches the server. */
static int hello_open(const char *path, struct fuse_file_info *fi) {
    enum file f = which(path);
    if (f != POOLS && f != ALLOC) return -ENOENT;
    fi->direct_io = 1;
    return 0;
}

static int hello_read(const char *path, char *buf, size_t size, off_t off, struct fuse_file_info *fi) {
    (void)fi;
    if (which(path) != POOLS) return -EACCES;
    size_t length = sizeof listing - 1;
    if (off < 0 || (size_t)off >= length) return 0;
    if (size > length - (size_t)off) size = length - (size_t)off;
    memcpy(buf, listing + off, size);
    return (int)size;
}

/* A whole decimal number with at most a trailing newline, or EINVAL: the store's parse. */
static int hello_write(const char *path, const char *buf, size_t size, off_t off, struct fuse_file_info *fi) {
    (void)off; (void)fi;
    if (which(path) != ALLOC) return -EACCES;
    size_t digits = size > 0 && buf[size - 1] == '\n' ? size - 1 : size;
    if (digits == 0 || digits > 20) return -EINVAL;
    for (size_t i = 0; i < digits; i++)
        if (buf[i] < '0' || buf[i] > '9') return -EINVAL;
    return (int)size;
}

/* O_TRUNC on `echo N > alloc`. */
static int hello_truncate(const char *path, off_t size, struct fuse_file_info *fi) {
    (void)size; (void)fi;
    return which(path) == ALLOC ? 0 : -EACCES;
}

static const struct fuse_operations operations = {
    .getattr = hello_getattr,
    .readdir = hello_readdir,
    .open = hello_open,
    .read = hello_read,
    .write = hello_write,
    .truncate = hello_truncate,
};

int main(int argc, char *argv[]) { return fuse_main(argc, argv, &operations, NULL); }

#!/bin/sh
# The kernel's own dma_map_benchmark tool against dmaemu's mount: the selftest source and
# header from Debian's linux-source-6.12, built unchanged, run in a private mount
# namespace where the mount's kernel/debug is bound at /sys/kernel/debug (the tool's path
# is fixed). Then the two struct layouts and the kernel's refusals through ioctl(2) itself.
# Needs root (FUSE, the namespace) and the debug build (`swift build`).
set -eu
cd "$(dirname "$0")/../.."
. tools/testing/vm/lib.sh
harness=map-benchmark-test
. tools/testing/harness.sh

# The two files, out of the 150 MB source tarball once; kept in the cache.
src=$VM_CACHE/src/selftest-dma-6.12
if [ ! -e "$src/.done" ]; then
	deb=$(vm_fetch_deb linux-source-6.12)
	rm -rf "$src" && mkdir -p "$src"
	dpkg-deb --fsys-tarfile "$deb" | tar -xO ./usr/src/linux-source-6.12.tar.xz | tar -xJ -C "$src" \
		linux-source-6.12/tools/testing/selftests/dma/dma_map_benchmark.c linux-source-6.12/include/linux/map_benchmark.h
	dpkg-deb -f "$deb" Version >"$src/version"
	touch "$src/.done"
fi
tree=$src/linux-source-6.12
# The selftest's Makefile puts the tree's usr/include (installed uapi headers) before its
# include/; the host's uapi headers stand in for the first, the kernel's header for the second.
mkdir -p "$work/include/linux"
cp "$tree/include/linux/map_benchmark.h" "$work/include/linux/"
gcc -O2 -Wall -I "$work/include" -o "$work/dma_map_benchmark" "$tree/tools/testing/selftests/dma/dma_map_benchmark.c"
echo "built dma_map_benchmark from linux-source-6.12 $(cat "$src/version")"

mkdir -p "$mnt"
cat >"$work/machine.toml" <<'TOML'
[machine]
ram = "8G"
kernel = "6.12"
[swiotlb]
size = "4M"
dynamic = false
TOML
"$bin/dmaemud" "$mnt" --config "$work/machine.toml" >"$work/daemon.log" 2>&1 &
daemon=$!
for _ in $(seq 50); do [ -e "$mnt/kernel/debug/dma_map_benchmark" ] && break; sleep 0.1; done

tool() {  # tool ARGS...: the tool as a kernel developer runs it, in its own mount namespace
	unshare -m sh -c "mount --make-rprivate / && mount --bind '$mnt/kernel/debug' /sys/kernel/debug && exec '$work/dma_map_benchmark' $*"
}

tool -t 2 -s 1 -b 32 -d 1 -g 4 >"$work/out" 2>&1 || true
check "the tool's first line" [ "$(sed -n 1p "$work/out")" = "dma mapping benchmark: threads:2 seconds:1 node:-1 dir:TO_DEVICE granule: 4" ]
check "its map line" grep -Eqx 'average map latency\(us\):[0-9]+\.[0-9] standard deviation:[0-9]+\.[0-9]' "$work/out"
check "its unmap line" grep -Eqx 'average unmap latency\(us\):[0-9]+\.[0-9] standard deviation:[0-9]+\.[0-9]' "$work/out"
check "three lines and no more" [ "$(wc -l <"$work/out")" -eq 3 ]
# The buffers come from above 4 GiB: 32 bits bounce them, 4 pages (8 slots) a thread at once.
check "the maps bounced" [ "$(cat "$mnt/kernel/debug/swiotlb/io_tlb_used_hiwater")" -ge 8 ]
# (cat, not cmp: cmp -s takes an attribute's nominal size of a page for a difference.)
check "a read shows the run's lines" [ "$(cat "$mnt/kernel/debug/dma_map_benchmark")" = "$(cat "$work/out")" ]
status=0
tool -s 1 -b 24 >"$work/out" 2>&1 || status=$?
check "a map that cannot be done fails the ioctl" [ "$status" -eq 1 ] && grep -q '^ioctl: Cannot allocate memory$' "$work/out"
check "with the kernel's message" grep -q 'dma_map_benchmark: dma_map_single failed on dma_map_benchmark' "$mnt/kmsg"
status=0
tool -s 1 -b 20 >"$work/out" 2>&1 || status=$?
check "a mask dma_set_mask() refuses is EINVAL" [ "$status" -eq 1 ] && grep -q '^ioctl: Invalid argument$' "$work/out"

# ioctl(2) by hand: both layouts, and what the tool never sends.
python3 - "$mnt/kernel/debug/dma_map_benchmark" "$mnt/kmsg" "$mnt/kernel/buddyinfo" <<'PY' || failures=$((failures + 1))
import errno, fcntl, os, struct, sys
path, kmsg, other = sys.argv[1:]
def arg(size, threads=1, seconds=1, node=-1, bits=32, dir=0, delay=0, granule=1, mode=0):
    b = bytearray(size)
    struct.pack_into("<IIiIIII", b, 32, threads, seconds, node, bits, dir, delay, granule)
    if size == 136: b[60] = mode
    return b
def call(cmd, b, file=path):
    fd = os.open(file, os.O_RDWR if file == path else os.O_RDONLY)
    try:
        fcntl.ioctl(fd, cmd, b)
        return 0
    except OSError as e:
        return e.errno
    finally:
        os.close(fd)
ok = True
def expect(name, cond):
    global ok
    print(("ok   " if cond else "FAIL ") + name)
    ok = ok and cond
for cmd, size in ((0xC0886401, 136), (0xC0406401, 64)):
    b = arg(size, threads=2, granule=2)
    sent = bytes(b)
    expect(f"{cmd:#x} runs", call(cmd, b) == 0)
    avg_map, map_sd, avg_unmap, unmap_sd = struct.unpack_from("<QQQQ", b, 0)
    expect(f"{cmd:#x} fills the figures", avg_map > 0 and avg_unmap > 0)
    expect(f"{cmd:#x} gives the rest back", bytes(b[32:]) == sent[32:])
expect("sg mode (map_mode 1) runs", call(0xC0886401, arg(136, granule=8, mode=1)) == 0)
bad = [("invalid map mode", arg(136, mode=2)),
       ("invalid thread number", arg(136, threads=0)), ("invalid thread number", arg(136, threads=1025)),
       ("invalid duration seconds", arg(136, seconds=0)), ("invalid duration seconds", arg(136, seconds=301)),
       ("invalid DMA direction", arg(136, dir=3)), ("invalid granule size", arg(136, granule=0)),
       ("invalid granule size", arg(64, granule=1025)), ("invalid numa node", arg(136, node=5)),
       ("invalid transmission delay", arg(136, delay=10000001))]
for message, b in bad:
    cmd = 0xC0886401 if len(b) == 136 else 0xC0406401
    expect(f"{message}: EINVAL", call(cmd, b) == errno.EINVAL)
    expect(f"{message}: the kernel's line", open(kmsg).read().splitlines()[-1].endswith("dma_map_benchmark: " + message))
expect("another command: EINVAL", call(0xC0886402, arg(136)) == errno.EINVAL)
expect("a file with no ioctl: ENOTTY", call(0xC0886401, arg(136), other) == errno.ENOTTY)
expect("a directory: ENOTTY", call(0xC0886401, arg(136), os.path.dirname(path)) == errno.ENOTTY)
sys.exit(0 if ok else 1)
PY

echo "map-benchmark-test: $failures failed"
[ "$failures" -eq 0 ]

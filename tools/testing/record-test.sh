#!/bin/sh
# tools/dmaemu-record on dmaemu's own tree: a recording of an I/O job parses, replays to the
# host's counters, and leaves tracing as it was; without root or tracefs it refuses.
# Needs root (FUSE and the recorder) and the debug build (`swift build`).
set -eu
cd "$(dirname "$0")/../.."
harness=record-test
. tools/testing/harness.sh
record=tools/dmaemu-record

mkdir -p "$mnt"
cat >"$work/machine.toml" <<'TOML'
[machine]
ram = "8G"
kernel = "6.12"
[swiotlb]
size = "4M"
dynamic = false
[[device]]
driver = "nvme"
name = "0000:01:00.0"
dma_mask_bits = 32
TOML
"$bin/dmaemud" "$mnt" --config "$work/machine.toml" >"$work/daemon.log" 2>&1 &
daemon=$!
for _ in $(seq 50); do [ -e "$mnt/kernel/tracing/tracing_on" ] && break; sleep 0.1; done
tracing=$mnt/kernel/tracing
state() { cat "$tracing/tracing_on" "$tracing/buffer_size_kb" "$tracing"/events/*/*/enable | tr '\n' ' '; }
before=$(state)

io=$mnt/devices/0000:01:00.0/io
"$record" -r "$mnt" -o "$work/rec" -- sh -c "echo 'write 131072 count=64 threads=2' > $io" 2>"$work/record.err"
check "the recorder exits 0 after its command" [ $? -eq 0 ]
check "tracing is put back as it was" [ "$(state)" = "$before" ]
check "the header names the emulated kernel" grep -qx '# kernel: 6.12-dmaemu' "$work/rec"
check "the header has the swiotlb boot lines" grep -q '^# boot: .*software IO TLB: mapped \[mem 0x0000000001000000-0x0000000001400000\] (4MB)' "$work/rec"
check "the header has the device and its mask" grep -qx '# device: 0000:01:00.0 driver=nvme dma_mask_bits=32' "$work/rec"
check "the header has the pools made before" grep -q '^# pool: 0000:01:00.0 prp list 256 ' "$work/rec"

"$bin/dmaemu-replay" "$work/rec" --json >"$work/replay.json"
check "the recording parses and replays" [ -s "$work/replay.json" ]
# 64 writes on each of 2 threads, each one 128 KiB segment that bounces (the mask is 32 bits,
# the pages above 4 GiB): 128 maps of 64 slots; the replay's hiwater is the daemon's.
hiwater=$(sed -n 's/^# debugfs: io_tlb_used_hiwater //p' "$work/rec")
check "the daemon's hiwater was saved" [ -n "$hiwater" ]
python3 - "$work/replay.json" "$hiwater" <<'PY' || failures=$((failures + 1))
import json, sys
report = json.load(open(sys.argv[1]))
result, hiwater = report["result"], int(sys.argv[2])
checks = {
    "128 dma_map_sg replayed": result["operations"].get("dma_map_sg") == 128,
    "every bounce again": result["bounces"] == result["recorded_bounces"] == 128,
    "the host's hiwater": result["swiotlb"]["hiwater"] == hiwater,
    "nothing unmatched or left mapped": result["unmatched"] == 0 and result["outstanding"] == 0,
    "the prp list 256 pool replayed": any(p["name"] == "prp list 256" and p["peak_active"] > 0 for p in result["pools"]),
}
for name, ok in checks.items():
    print(("ok   " if ok else "FAIL ") + name)
sys.exit(0 if all(checks.values()) else 1)
PY

# The command line as a user runs it: --config, --sweep, a bad line.
"$bin/dmaemu-replay" "$work/rec" --config "$work/machine.toml" --swiotlb 1M --json >"$work/config.json"
check "--config and an override make the machine" python3 -c "
import json, sys
m = json.load(open('$work/config.json'))['machine']
sys.exit(0 if (m['swiotlb_bytes'], m['slots'], m['dynamic'], m['ram_bytes']) == (1 << 20, 512, False, 8 << 30) else 1)"
"$bin/dmaemu-replay" "$work/rec" --sweep swiotlb=512K,1M,4M >"$work/sweep.txt"
check "--sweep marks the smallest size that held" grep -q '^512 KiB .*<- smallest that never overflowed' "$work/sweep.txt"
line=$(grep -n ': dma_map_sg: ' "$work/rec" | head -1 | cut -d: -f1)
sed "${line}s/dma_addrs={0x[0-9a-f]*}/dma_addrs={zz}/" "$work/rec" >"$work/bad"
status=0
"$bin/dmaemu-replay" "$work/bad" >/dev/null 2>"$work/err" || status=$?
check "a bad line is refused with exit 1" [ "$status" -eq 1 ]
check "and named" grep -q "^dmaemu-replay: $work/bad: line $line: dma_map_sg: dma_addrs= holds a value that is not 0x and hex" "$work/err"

# On a real kernel the pools come from kprobes; their lines, as kprobe events print them
# (kernel/trace/trace_kprobe.c: "(sym+off/size)" or "(caller <- sym)", x64 as 0x%Lx,
# u64 in decimal, strings quoted), become dmaemu's dmapool lines.
cat >"$work/kprobes" <<'RAW'
           nvme-210     [001] .....    12.000001: dma_pool_create: (dma_pool_create+0x0/0x1d0) dev="0000:00:04.0" name="prp list page" size=4096 align=4096 boundary=0
           nvme-210     [001] .....    12.000003: dma_pool_create_ret: (nvme_setup_prp_pools+0x31/0x90 [nvme] <- dma_pool_create) pool=0xffff8880049f1e00
           nvme-210     [001] .....    12.000010: dma_pool_alloc: (dma_pool_alloc+0x0/0x1f0) pool=0xffff8880049f1e00
           nvme-210     [001] .....    12.000011: dma_alloc: 0000:00:04.0 dir=BIDIRECTIONAL dma_addr=4a00000 size=4096 virt_addr=00000000c0ffee00 flags=GFP_ATOMIC attrs=
           nvme-210     [001] .....    12.000013: dma_pool_alloc_ret: (nvme_setup_prps+0x1a2/0x3c0 [nvme] <- dma_pool_alloc) vaddr=0xffff888004a00000
    kworker/1:1H-88      [001] .....    12.000020: dma_pool_alloc_ret: (nvme_pci_setup_prps+0x1a2/0x3c0 [nvme] <- dma_pool_alloc) pool=0xffff8880049f1c00 vaddr=0xffff888004a10100 dma=0x4a10100
          <idle>-0       [000] d.h1.    12.000030: dma_pool_free: (dma_pool_free+0x0/0x110) pool=0xffff8880049f1e00 vaddr=0xffff888004a00000 dma=0x4a00000
           nvme-210     [001] .....    12.000040: dma_pool_destroy: (dma_pool_destroy+0x0/0x160) pool=0xffff8880049f1e00
RAW
"$record" -N <"$work/kprobes" >"$work/normalized"
cat >"$work/expected" <<'LINES'
           nvme-210     [001] .....    12.000003: dma_pool_create: 0000:00:04.0 name="prp list page" pool=ffff8880049f1e00 size=4096 align=4096 boundary=0
           nvme-210     [001] .....    12.000011: dma_alloc: 0000:00:04.0 dir=BIDIRECTIONAL dma_addr=4a00000 size=4096 virt_addr=00000000c0ffee00 flags=GFP_ATOMIC attrs=
           nvme-210     [001] .....    12.000013: dma_pool_alloc: 0000:00:04.0 name="prp list page" pool=ffff8880049f1e00 vaddr=ffff888004a00000 dma=0
    kworker/1:1H-88      [001] .....    12.000020: dma_pool_alloc: unknown name="pool@ffff8880049f1c00" pool=ffff8880049f1c00 vaddr=ffff888004a10100 dma=4a10100
          <idle>-0       [000] d.h1.    12.000030: dma_pool_free: 0000:00:04.0 name="prp list page" pool=ffff8880049f1e00 vaddr=ffff888004a00000 dma=4a00000
           nvme-210     [001] .....    12.000040: dma_pool_destroy: 0000:00:04.0 name="prp list page" pool=ffff8880049f1e00
LINES
check "kprobe lines become dmapool lines" cmp -s "$work/expected" "$work/normalized" || diff "$work/expected" "$work/normalized" || true
check "and they parse" sh -c "\"$bin/dmaemu-replay\" \"$work/normalized\" >/dev/null"

status=0
"$record" -r "$mnt" -o "$work/rec2" -- false 2>/dev/null || status=$?
check "the command's exit status is the recorder's" [ "$status" -eq 1 ]

"$record" -r "$mnt" -o "$work/rec3" -d 30 2>/dev/null &
pid=$!
sleep 1.5
# TERM, not INT: a background job of a script starts with SIGINT ignored, and sh cannot trap it then.
kill -TERM "$pid"
status=0
wait "$pid" || status=$?
check "TERM stops it with 143" [ "$status" -eq 143 ]
check "TERM puts tracing back" [ "$(state)" = "$before" ]

status=0
setpriv --reuid=65534 --regid=65534 --clear-groups "$record" -r "$mnt" -d 1 >/dev/null 2>"$work/err" || status=$?
check "a user who is not root is refused" [ "$status" -eq 1 ]
check "and told why" grep -q 'must run as root' "$work/err"

status=0
"$record" -t "$work/nowhere" -d 1 >/dev/null 2>"$work/err" || status=$?
check "no tracefs is refused" [ "$status" -eq 1 ]
check "and named" grep -q "no tracefs at $work/nowhere" "$work/err"
status=0
"$record" -d soon 2>"$work/err" || status=$?
check "a bad -d is refused" [ "$status" -eq 1 ] && grep -q 'not a whole number' "$work/err"

[ "$failures" -eq 0 ] || { echo "record-test: $failures failed"; exit 1; }
echo "record-test: all passed"

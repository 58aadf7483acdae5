#!/usr/bin/env bash
# The FUSE figures of `make bench`: dmaemud and ../shared/bench/fuse_hello.c mounted side by
# side, timed by ../shared/bench/fuse_rw.py in the same run, plus `echo 373959 > alloc`
# against the engine's own time for the same allocations (dmaemu-bench mpt3sas, stack).
set -euo pipefail
shared=${SHARED:-../shared}
out=${BENCH_OUT:-bench-results}
n=${N:-5000}
mkdir -p "$out"
work=$(mktemp -d /tmp/dmaemu-bench-fuse.XXXXXX)
hello="$work/hello" dmaemu="$work/dmaemu"
mkdir -p "$hello" "$dmaemu"
cleanup() {
  fusermount3 -u "$hello" 2>/dev/null || true
  [ -n "${daemon:-}" ] && kill -TERM "$daemon" 2>/dev/null && wait "$daemon" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

cc -O2 "$shared/bench/fuse_hello.c" $(pkg-config --cflags --libs fuse3) -o "$work/fuse_hello"
"$work/fuse_hello" "$hello"
.build/release/dmaemud "$dmaemu" 2>/dev/null &
daemon=$!
dev="$dmaemu/devices/0000:00:04.0"
for _ in $(seq 100); do [ -e "$dev/create_pool" ] && break; sleep 0.1; done
echo "small 128 16" > "$dev/create_pool"
rounds=${ROUNDS:-3}

# Interleaved rounds (this kind of VM is noisy); medians are reported.
rw() { python3 "$shared/bench/fuse_rw.py" -n "$n" "$@"; }
: > "$out/fuse.jsonl"
echo_ms=""
for round in $(seq "$rounds"); do
  {
    rw "$hello/pools"
    rw "$dev/pools"
    rw --write 1 "$hello/alloc"
    rw --write 1 "$dev/dma_pools/small/alloc"
  } | tee -a "$out/fuse.jsonl"
  echo "chain$round 128 16" > "$dev/create_pool"
  echo_ms="$echo_ms $(python3 - "$dev/dma_pools/chain$round/alloc" <<'PY'
import os, sys, time
start = time.perf_counter()
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_TRUNC)
os.write(fd, b"373959\n")
os.close(fd)
print("%.1f" % ((time.perf_counter() - start) * 1e3))
PY
)"
done
engine=$(.build/release/dmaemu-bench mpt3sas --algorithm stack --runs "$rounds" --json | python3 -c 'import json,sys; print(json.loads(sys.stdin.readline())["alloc_ms"])')
python3 - "$out/fuse.jsonl" "$engine" $echo_ms <<'PY' | tee "$out/fuse.txt"
import json, statistics, sys
lines = [json.loads(l) for l in open(sys.argv[1])]
med = lambda i: statistics.median(l["us_per_op"] for l in lines[i::4])
hr, dr, hw, dw = med(0), med(1), med(2), med(3)
print(f"medians of {len(lines) // 4} interleaved rounds of {lines[0]['n']} operations")
print(f"cat pools:        dmaemu {dr:.1f} us  fuse_hello.c {hr:.1f} us  ({dr / hr:.2f}x)")
print(f"echo 1 > alloc:   dmaemu {dw:.1f} us  fuse_hello.c {hw:.1f} us  ({dw / hw:.2f}x)")
engine, echo = float(sys.argv[2]), statistics.median(float(x) for x in sys.argv[3:])
print(f"echo 373959 > alloc: {echo:.1f} ms; the engine alone (create+alloc): {engine:.1f} ms; overhead {echo - engine:+.1f} ms (target <= 5 ms)")
PY

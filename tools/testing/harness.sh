# Shared by the shell tests that run dmaemud on a mount of their own (sourced after `cd`
# to the repository, with $harness naming the test): a scratch directory with the
# mountpoint, the daemon's pid for the exit trap to stop, and `check`, which counts
# failures.
bin=.build/debug
work=$(mktemp -d "/tmp/dmaemu-$harness.XXXXXX")
mnt=$work/mnt
daemon=
failures=0

cleanup() {
	[ -n "$daemon" ] && kill "$daemon" 2>/dev/null && wait "$daemon" 2>/dev/null
	fusermount3 -u "$mnt" 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT

check() {  # check NAME CONDITION-COMMAND...
	name=$1
	shift
	if "$@"; then echo "ok   $name"; else echo "FAIL $name"; failures=$((failures + 1)); fi
}

#!/bin/sh
# make vm-test: dmaemu as a systemd service on a real systemd. A Debian 12 guest (systemd
# 252, Debian's kernel) boots under QEMU with dmaemud installed by `make install
# DESTDIR=`; a unit with no sandboxing of its own runs guest/systemd-check.sh, which
# reports each check with its evidence on the second serial port, and powers off.
#
#   VM_UNIT=FILE    boot with this unit instead of systemd/dmaemu.service (to try one)
#   VM_ACCEL=tcg    skip the KVM probe; VM_TIMEOUT=S the whole boot's limit (600)
set -eu
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../../.." && pwd)
. "$here/lib.sh"

KERNEL=${VM_KERNEL:-6.12.117+deb12}
vm_host_deps
root=$("$here/rootfs.sh")
kdir=$(vm_kernel "$KERNEL")
run="$VM_CACHE/runs/systemd"
rm -rf "$run" && mkdir -p "$run"

vm_log "installing dmaemud into the guest (make install DESTDIR=)"
stage="$run/root"
cp -a "$root" "$stage"
make -C "$repo" --no-print-directory install DESTDIR="$stage" > "$run/install.log" 2>&1 ||
    { tail -30 "$run/install.log" >&2; vm_die "make install failed"; }
[ -z "${VM_UNIT:-}" ] || install -m 0644 "$VM_UNIT" "$stage/etc/systemd/system/dmaemu.service"
install -D -m 0755 "$here/guest/systemd-check.sh" "$stage/usr/local/libexec/dmaemu-vm/systemd-check.sh"
install -D -m 0644 "$here/guest/dmaemu-vm-check.service" "$stage/etc/systemd/system/dmaemu-vm-check.service"
ln -sf /etc/systemd/system/dmaemu-vm-check.service "$stage/etc/systemd/system/multi-user.target.wants/dmaemu-vm-check.service"
mkfs.ext4 -q -F -L dmaemu-vm -d "$stage" "$run/root.img" 1200M
rm -rf "$stage"

vm_initramfs "$kdir" "$here/guest/init-switch-root" "$run/initrd" crc16 mbcache jbd2 crc32c_generic ext4 virtio_blk
accel=$(vm_accel "$kdir")
vm_log "booting Debian 12 with systemd under $accel (about a minute with TCG)"
start=$(date +%s)
status=0
vm_boot "$accel" "${VM_TIMEOUT:-600}" "$(ls "$kdir"/boot/vmlinuz-*)" "$run/initrd" \
    "console=ttyS0 root=/dev/vda rw systemd.show_status=0" \
    -m 1024 -smp 1 -drive "file=$run/root.img,format=raw,if=virtio,snapshot=on" \
    -serial "file:$run/console.log" -serial "file:$run/results.log" -serial "file:$run/journal.log" \
    2> "$run/qemu.log" || status=$?
vm_log "guest done in $(( $(date +%s) - start )) s (QEMU status $status); logs in $run"

sed -n 's/^DMAEMU-VM: //p' "$run/results.log"
tr -d '\r' < "$run/results.log" > "$run/results.txt"
failed=$(grep -c '^DMAEMU-VM: FAIL' "$run/results.txt" || true)
passed=$(grep -c '^DMAEMU-VM: PASS' "$run/results.txt" || true)
grep -q '^DMAEMU-VM: DONE' "$run/results.txt" || { tail -40 "$run/console.log" >&2; vm_die "the guest did not finish its checks (QEMU status $status)"; }
expected=$(grep -c '^check ' "$here/guest/systemd-check.sh")
# The exposure the README promises is the one this systemd measured.
score=$(sed -n 's/^DMAEMU-VM: EXPOSURE //p' "$run/results.txt")
if ! grep -q "exposure $score" "$repo/README.md"; then
    echo "FAIL README: systemd-analyze security measured $score; README does not say \"exposure $score\""
    failed=$((failed + 1))
fi
echo "vm-test: $passed of $expected checks passed, $failed failed"
[ "$failed" = 0 ] && [ "$passed" = "$expected" ]

#!/bin/sh
# A Debian 12 root file system with systemd, from Debian's packages, made once per version
# of this script and kept in $VM_CACHE/rootfs/; prints its path. The guest boots with
# console=ttyS0, so the gettys and timers that would wait on it are masked.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"

PACKAGES=systemd,systemd-sysv,fuse3,libfuse3-3,udev,kmod,procps,util-linux,passwd
key=$( { cat "$0"; echo "$PACKAGES $VM_MIRROR"; } | sha256sum | cut -c1-12)
root="$VM_CACHE/rootfs/bookworm-systemd-$key"
if [ -e "$root/.done" ]; then echo "$root"; exit 0; fi

vm_host_deps
mkdir -p "$VM_CACHE/rootfs"
rm -rf "$root.tmp"
vm_log "debootstrap bookworm into $root (a few minutes, once)"
debootstrap --variant=minbase --include="$PACKAGES" bookworm "$root.tmp" "$VM_MIRROR" > "$VM_CACHE/rootfs/debootstrap.log" 2>&1 ||
    { tail -20 "$VM_CACHE/rootfs/debootstrap.log" >&2; vm_die "debootstrap failed"; }

echo dmaemu-vm > "$root.tmp/etc/hostname"
echo "/dev/vda / ext4 rw,errors=remount-ro 0 1" > "$root.tmp/etc/fstab"
# No password: nobody logs in; the test runs as a unit.
for unit in getty@.service serial-getty@.service systemd-timesyncd.service apt-daily.timer \
    apt-daily-upgrade.timer e2scrub_all.timer fstrim.timer systemd-tmpfiles-clean.timer; do
    ln -sf /dev/null "$root.tmp/etc/systemd/system/$unit"
done
rm -rf "$root.tmp/var/cache/apt/archives"/*.deb "$root.tmp/var/lib/apt/lists"/*_Packages
touch "$root.tmp/.done"
mv "$root.tmp" "$root"
echo "$root"

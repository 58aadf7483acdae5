# Shared by the VM harnesses (sourced): the download cache, Debian's kernels, a busybox
# initramfs, and one bounded QEMU boot. Everything large lives in $VM_CACHE, outside the
# work tree, so a clean clone builds it once and later runs reuse it.

VM_CACHE=${VM_CACHE:-$([ "$(id -u)" = 0 ] && echo /var/cache/dmaemu || echo "${XDG_CACHE_HOME:-$HOME/.cache}/dmaemu")}
VM_MIRROR=${VM_MIRROR:-http://deb.debian.org/debian}
# The host packages the harnesses run on.
VM_HOST_DEBS="qemu-system-x86 debootstrap busybox-static cpio xz-utils e2fsprogs"

vm_log() { printf 'vm: %s\n' "$*" >&2; }
vm_die() { printf 'vm: error: %s\n' "$*" >&2; exit 1; }

vm_host_deps() {
    missing=""
    for p in $VM_HOST_DEBS; do dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"; done
    [ -z "$missing" ] && return 0
    [ "$(id -u)" = 0 ] || vm_die "needs root to install:$missing"
    vm_log "installing:$missing"
    apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $missing >/dev/null
}

# Downloads Debian's package $1 (exact name) into the cache once; prints the .deb's path.
vm_fetch_deb() {
    mkdir -p "$VM_CACHE/debs"
    deb=$(ls "$VM_CACHE/debs/$1"_*.deb 2>/dev/null | head -n 1)
    if [ -z "$deb" ]; then
        vm_log "downloading $1"
        ( cd "$VM_CACHE/debs" && { apt-get download -q -o APT::Sandbox::User=root "$1" >/dev/null 2>&1 ||
            { apt-get update -q >/dev/null && apt-get download -q -o APT::Sandbox::User=root "$1" >/dev/null; }; } ) ||
            vm_die "cannot download $1 from Debian"
        deb=$(ls "$VM_CACHE/debs/$1"_*.deb | head -n 1)
    fi
    echo "$deb"
}

# Debian's kernel image package for release $1 (e.g. 6.12.117+deb12), unpacked once;
# prints the directory (boot/vmlinuz-*, lib/modules/*).
vm_kernel() {
    dir="$VM_CACHE/kernels/$1"
    if [ ! -e "$dir/.done" ]; then
        deb=$(vm_fetch_deb "linux-image-$1-amd64") || exit 1
        rm -rf "$dir" && mkdir -p "$dir"
        dpkg-deb -x "$deb" "$dir" && touch "$dir/.done"
    fi
    echo "$dir"
}

# vm_modules KERNEL_DIR DIR MODULE...: the named modules of the kernel, decompressed, into
# DIR, and their names in DIR/order (the order to insmod them in).
vm_modules() {
    kdir=$1 mdir=$2
    shift 2
    : > "$mdir/order"
    for m in "$@"; do
        ko=$(find "$kdir/lib/modules" -name "$m.ko*" | head -n 1)
        [ -n "$ko" ] || vm_die "module $m not in $kdir"
        case $ko in
        *.xz) xz -dc "$ko" > "$mdir/$m.ko" ;;
        *.zst) zstd -dc "$ko" > "$mdir/$m.ko" ;;
        *) cp "$ko" "$mdir/$m.ko" ;;
        esac
        echo "$m" >> "$mdir/order"
    done
}

# vm_initramfs KERNEL_DIR INIT OUT MODULE...: busybox, the named modules (decompressed,
# insmod'ed by INIT in the order given) and INIT as /init, as a gzip'd cpio.
vm_initramfs() {
    kdir=$1 init=$2 out=$3
    shift 3
    tree=$(mktemp -d)
    mkdir -p "$tree/bin" "$tree/dev" "$tree/proc" "$tree/sys" "$tree/newroot" "$tree/lib/modules"
    cp /bin/busybox "$tree/bin/busybox"
    vm_modules "$kdir" "$tree/lib/modules" "$@"
    cp "$init" "$tree/init" && chmod 0755 "$tree/init"
    ( cd "$tree" && find . | cpio -o -H newc --quiet | gzip -1 ) > "$out"
    rm -rf "$tree"
}

# The accelerator: $VM_ACCEL if set, else kvm when a guest actually runs under it (on
# these machines /dev/kvm opens but QEMU stops with "KVM internal error ... emulation
# failure", and pauses instead of exiting), else tcg.
vm_accel() {
    if [ -n "${VM_ACCEL:-}" ]; then echo "$VM_ACCEL"; return; fi
    [ -w /dev/kvm ] || { echo tcg; return; }
    probe=$(mktemp -d)
    printf '#!/bin/busybox sh\n/bin/busybox mount -t devtmpfs dev /dev\n/bin/busybox echo KVM-PROBE-OK > /dev/ttyS0\n/bin/busybox poweroff -f\n' > "$probe/init"
    vm_initramfs "$1" "$probe/init" "$probe/initrd"
    qemu-system-x86_64 -accel kvm -m 256 -smp 1 -display none -monitor none -no-reboot \
        -serial "file:$probe/serial" -kernel "$(ls "$1"/boot/vmlinuz-*)" -initrd "$probe/initrd" \
        -append "console=ttyS0 quiet panic=-1" 2> "$probe/stderr" &
    qemu=$!
    accel=tcg
    for _ in $(seq 300); do
        if grep -q KVM-PROBE-OK "$probe/serial" 2>/dev/null; then accel=kvm; break; fi
        if grep -q "KVM internal error" "$probe/stderr" 2>/dev/null || ! kill -0 $qemu 2>/dev/null; then break; fi
        sleep 0.1
    done
    kill -9 $qemu 2>/dev/null; wait $qemu 2>/dev/null || true
    rm -rf "$probe"
    echo $accel
}

# vm_boot ACCEL TIMEOUT KERNEL INITRD CMDLINE QEMU-ARGS...: one boot, killed (by its PID,
# through timeout) if it has not powered off within TIMEOUT seconds: a guest that oopses
# without panicking keeps running and holds its disk image. Returns QEMU's status (137
# on the timeout).
vm_boot() {
    accel=$1 limit=$2 kernel=$3 initrd=$4 cmdline=$5
    shift 5
    timeout -s KILL "$limit" qemu-system-x86_64 -accel "$accel" -cpu max -display none -monitor none \
        -no-reboot -kernel "$kernel" -initrd "$initrd" -append "$cmdline panic=-1" "$@"
}

#!/bin/sh
# The real kernels as dmaemu's oracle: boots Debian's 6.1 and 6.12 kernels under QEMU with
# a busybox initramfs and tools/oracle/dmaemu_oracle.ko, runs the scripts of each family in
# tools/oracle/experiments/ on each, and writes what the kernel printed to
# Tests/OracleTests/Fixtures/<family>-<kernel>.txt (make oracle),
# or to a scratch directory compared with the committed fixtures (make oracle-check).
#
#   tools/oracle/oracle.sh [--check]
#
# The kernels are cached where the VM harness keeps its downloads ($VM_CACHE,
# /var/cache/dmaemu), never in the work tree; their headers are installed through apt.
# Needs root; KVM is used only where a guest actually runs under it.
set -eu
cd "$(dirname "$0")/../.."
repo=$(pwd)
fixtures=$repo/Tests/OracleTests/Fixtures
check=
[ "${1:-}" = "--check" ] && check=1
# The kernels: Debian 12's own and its 6.12 (the package versions are in each fixture).
kernels="6.1.0-57 6.12.117+deb12"

say() { echo "oracle: $*" >&2; }
die() { echo "oracle: $*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || die "must run as root (apt, /usr/src, the guests' modules)"
. tools/testing/vm/lib.sh
VM_HOST_DEBS="qemu-system-x86 busybox-static cpio gcc make dmsetup pahole xz-utils zstd"
vm_host_deps
need=""
for release in $kernels; do
	dpkg -s "linux-headers-$release-amd64" >/dev/null 2>&1 || need="$need linux-headers-$release-amd64"
done
if [ -n "$need" ]; then
	say "installing$need"
	apt-get update -q >/dev/null
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $need >/dev/null
fi

# The kernel's vmlinux out of its bzImage (boot protocol 2.08: the payload starts
# payload_offset past the setup sectors and ends with the 4-byte decompressed size), for
# its BTF. Debian compresses 6.1 with xz and 6.12 with zstd.
vmlinux_of() {
	setup=$(od -An -tu1 -j 497 -N1 "$1" | tr -d ' ')
	offset=$(od -An -tu4 -j 584 -N4 "$1" | tr -d ' ')
	length=$(od -An -tu4 -j 588 -N4 "$1" | tr -d ' ')
	tail -c +$(((setup + 1) * 512 + offset + 1)) "$1" | head -c $((length - 4)) >"$2.payload"
	case $(od -An -tx1 -N4 "$2.payload" | tr -d ' ') in
	28b52ffd) zstd -q -dc "$2.payload" >"$2" ;;
	*) xz -dc "$2.payload" >"$2" ;;
	esac
	rm -f "$2.payload"
}

# oracle_layout.h: the offsets of mm/dmapool.c's private structs' members in this
# kernel, from its BTF (pahole), as ORACLE_<STRUCT>_<MEMBER>; a member the kernel's
# structs lack is left undefined, which is how the module tells the generations apart.
btf_layout() {
	for member in dma_pool.next_block dma_pool.page_list dma_pool.allocation dma_block.next_block dma_block.dma \
		dma_page.page_list dma_page.vaddr dma_page.dma dma_page.in_use dma_page.offset; do
		at=$(pahole -C "${member%.*}" "$1" 2>/dev/null | awk -v m="${member#*.}" \
			'$0 ~ "[ *]" m "(\\[[0-9]+\\])?;" { sub(/.*\/\*[ \t]*/, ""); print $1; exit }')
		if [ -n "$at" ]; then echo "#define ORACLE_$(echo "$member" | tr a-z. A-Z_) $at"; fi
	done
}

out=$fixtures
[ -n "$check" ] && out=$(mktemp -d /tmp/dmaemu-oracle.XXXXXX)
mkdir -p "$out"
accel=

for release in $kernels; do
	kdir=$(vm_kernel "$release")
	image=linux-image-$release-amd64
	version=$(dpkg-deb -f "$(vm_fetch_deb "$image")" Version)
	[ -n "$accel" ] || accel=$(vm_accel "$kdir")

	# The module, against this kernel's headers.
	build=$(mktemp -d /tmp/dmaemu-oracle-build.XXXXXX)
	cp tools/oracle/dmaemu_oracle.c "$build/"
	vmlinux_of "$kdir/boot/vmlinuz-$release-amd64" "$build/vmlinux"
	btf_layout "$build/vmlinux" >"$build/oracle_layout.h"
	grep -q _NEXT_BLOCK "$build/oracle_layout.h" || grep -q _IN_USE "$build/oracle_layout.h" ||
		die "no dmapool structs in $release's BTF (pahole, $build/vmlinux)"
	rm -f "$build/vmlinux"
	echo "obj-m := dmaemu_oracle.o" >"$build/Kbuild"
	make -s -C "/usr/src/linux-headers-$release-amd64" M="$build" modules >"$build/make.log" 2>&1 ||
		{ cat "$build/make.log" >&2; die "the module did not build against $release"; }

	# The initramfs: busybox, the module, the experiments and an init that runs them.
	initrd=$build/initrd
	mkdir -p "$initrd/bin" "$initrd/proc" "$initrd/sys" "$initrd/dev" "$initrd/tmp"
	cp /bin/busybox "$initrd/bin/busybox"
	cp "$build/dmaemu_oracle.ko" "$initrd/"
	cp -r tools/oracle/experiments "$initrd/experiments"
	cp tools/oracle/traced "$initrd/traced"
	cp tools/dmaemu-record "$initrd/dmaemu-record"
	cp -r tools/oracle/workloads "$initrd/workloads"
	cp tools/oracle/dmcrypt-check "$initrd/dmcrypt-check"
	gcc -static -O2 -o "$initrd/aio-read" tools/oracle/aio-read.c || die "aio-read.c did not build (gcc, libc6-dev)"
	# nvme and what it needs, in load order, for the workloads on QEMU's NVMe disk, and
	# dm-crypt for aes-xts-plain64.
	case $release in
	6.1.*) modules="crct10dif_common crc-t10dif crc64 crc64-rocksoft t10-pi nvme-core nvme ecb" ;;
	*) modules="nvme-auth nvme-core nvme" ;;  # ecb is built in
	esac
	mkdir -p "$initrd/lib/modules"
	vm_modules "$kdir" "$initrd/lib/modules" $modules dm-mod dm-crypt xts
	# megaraid_sas and the SCSI disk, loaded by the sas family itself.
	mkdir -p "$initrd/lib/modules/sas"
	vm_modules "$kdir" "$initrd/lib/modules/sas" scsi_common scsi_mod sd_mod megaraid_sas
	# The host's dmsetup and the libraries it links.
	mkdir -p "$initrd/usr/sbin"
	cp "$(command -v dmsetup)" "$initrd/usr/sbin/dmsetup"
	for lib in $(ldd "$(command -v dmsetup)" | grep -o '/[^ ]*'); do
		mkdir -p "$initrd$(dirname "$lib")"
		cp -L "$lib" "$initrd$lib"
	done
	# The disk, with what dmaemu's dm-crypt wrote (Fixtures/dmcrypt-<MiB>M.img) where
	# dmcrypt-check reads it.
	truncate -s 64M "$build/disk.img" "$build/sas.img"
	for written in "$fixtures"/dmcrypt-*M.img; do
		at=${written##*/dmcrypt-}
		dd if="$written" of="$build/disk.img" bs=1M seek="${at%M.img}" conv=notrunc status=none
	done
	cp tools/oracle/guest-init "$initrd/init"
	chmod +x "$initrd/init"
	(cd "$initrd" && find . | cpio -o -H newc --quiet | gzip -1) >"$build/initrd.gz"

	say "booting $release ($accel)"
	console=$build/console.log
	vm_boot "$accel" 600 "$kdir/boot/vmlinuz-$release-amd64" "$build/initrd.gz" \
		"console=ttyS0 quiet nokaslr swiotlb=force log_buf_len=16M" -m 1024 -smp 1 -nodefaults -serial "file:$console" \
		-drive "file=$build/disk.img,if=none,id=d0,format=raw" -device nvme,serial=oracle,drive=d0 \
		-device megasas,id=scsi0 -drive "file=$build/sas.img,if=none,id=d1,format=raw" -device scsi-hd,drive=d1,bus=scsi0.0 ||
		die "$release: qemu failed or timed out (see $console)"
	grep -q '^oracle: done' "$console" || { tail -30 "$console" >&2; die "$release: the guest did not finish"; }

	# One fixture per family of experiments and kernel.
	sed -n 's/\r$//; s/^oracle: //p' "$console" | grep -v '^done' >"$build/all"
	for family in tools/oracle/experiments/* tools/oracle/workloads/* trace; do
		family=${family##*/}
		grep -q "^family $family\$" "$build/all" || continue  # trace: only where the kernel has dma events
		fixture=$out/$family-$release.txt
		{
			echo "# tools/oracle/oracle.sh: $image $version, qemu-system-x86_64 -smp 1 -m 1024 -nodefaults,"
			echo "# console=ttyS0 quiet nokaslr swiotlb=force, a 64 MiB -device nvme and -device megasas; dmaemu_oracle.ko or the shell runs each script."
			[ "$family" = dmapool ] && echo "# the module read the free lists at these offsets (BTF): $(sed 's/#define ORACLE_//' "$build/oracle_layout.h" | tr '\n' ' ' | sed 's/ $//')"
			awk -v family="$family" '/^family / { on = ($2 == family); next } on' "$build/all"
		} >"$fixture"
		say "$fixture: $(grep -c '^experiment ' "$fixture") experiments, $(grep -c '^ *[^# ]' "$fixture") lines"
	done
	rm -rf "$build"
done

if [ -n "$check" ]; then
	# No two boots under TCG repeat a trace's times (the boot lines' too), pids,
	# need-resched flags or the pages the buffers and pool pages came from; the slots
	# swiotlb chose, the sizes and the order of events they do repeat, and those are compared.
	committed=$(mktemp -d /tmp/dmaemu-oracle-committed.XXXXXX)
	cp "$fixtures"/*.txt "$committed/"
	for trace in "$committed"/trace-*.txt "$out"/trace-*.txt; do
		[ -e "$trace" ] || continue
		sed -i -E -e '/^# note:/d' -e 's/^# boot: \[ *[0-9.]+\] /# boot: /' -e '/^ *[^# ]/{ s/^.*\] [^ ]+ +[0-9.]+: //; s/ (phys_addr|dev_addr|vaddr|virt_addr|pool|dma)=[^ ]*//g; }' \
			-e '/^dma_(alloc|free|pool)/s/ dma_addr=[^ ]*//' "$trace"
	done
	if diff -r "$committed" "$out"; then
		say "the kernels still print what Tests/OracleTests/Fixtures holds"
		rm -rf "$out" "$committed"
	else
		die "the kernels' output differs from Tests/OracleTests/Fixtures (the new output is in $out)"
	fi
fi

#!/bin/sh
# make vm-test, inside the guest: dmaemu.service as a user runs it, on Debian 12's systemd.
# Each `check NAME` line prints PASS or FAIL with the evidence it saw; the host counts
# these lines (one PASS expected per `check` at the start of a line here). Output goes to
# the second serial port; the whole journal goes to the third at the end.
set -u
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
passed=0
failed=0
say() { printf 'DMAEMU-VM: %s\n' "$*"; }
evidence() { sed 's/^/DMAEMU-VM:     | /'; }
check() {
    name=$1
    shift
    if "$@"; then
        say "PASS $name"; passed=$((passed + 1)); last=0
    else
        say "FAIL $name"; failed=$((failed + 1)); last=1
    fi
}

gen=/mnt/devices/0000:00:04.0
nvme=/mnt/devices/0000:01:00.0
key=000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f
mainpid() { systemctl show -p MainPID --value dmaemu; }
restarts() { systemctl show -p NRestarts --value dmaemu; }
cursor() { journalctl -n 0 --show-cursor | sed -n 's/^-- cursor: //p'; }
# The journal since cursor $1, the manager's lines about dmaemu and the daemon's own.
journal_since() { journalctl --no-pager -o short-monotonic --after-cursor="$1" _SYSTEMD_UNIT=dmaemu.service + UNIT=dmaemu.service; }
# Waits up to $2 s for dmaemu to be active with a main process other than $1.
wait_restarted() {
    for _ in $(seq $(($2 * 10))); do
        pid=$(mainpid)
        [ "$(systemctl is-active dmaemu)" = active ] && [ "$pid" != 0 ] && [ "$pid" != "$1" ] && mountpoint -q /mnt && return 0
        sleep 0.1
    done
    return 1
}
# The line number of the first line of $1 matching $2 (0: none).
line_of() { grep -n -m1 -e "$2" "$1" | cut -d: -f1 | grep . || echo 0; }

# The journal to the third port, and power off.
finish() {
    systemctl stop dmaemu
    say "DONE passed=$passed failed=$failed${1:+ ($1)}"
    journalctl -b --no-pager -o short-monotonic > /dev/ttyS2 2>&1
    systemctl start --no-block poweroff.target
    exit 0
}

say "systemd $(systemctl --version | head -n1 | cut -d' ' -f2), kernel $(uname -r)"

verify() {
    systemd-analyze verify /etc/systemd/system/dmaemu.service > /tmp/verify 2>&1
    rc=$?
    echo "systemd-analyze verify: exit $rc" | cat - /tmp/verify | evidence
    [ $rc = 0 ] && ! grep -q . /tmp/verify
}
check unit-verifies verify

security() {
    systemd-analyze security --no-pager dmaemu.service > /tmp/security 2>&1
    grep -v '✓' /tmp/security | evidence
    score=$(sed -n 's/.*Overall exposure level for dmaemu.service: \([0-9.]*\).*/\1/p' /tmp/security)
    say "EXPOSURE $score"
    [ -n "$score" ] && awk -v s="$score" 'BEGIN { exit !(s <= 3.4) }'
}
check exposure-at-most-3.4 security

# --- start: active only once READY=1 has come, and the mount is everyone's ---
start() {
    c=$(cursor)
    systemctl log-level debug
    systemctl enable --now dmaemu > /tmp/enable 2>&1
    rc=$?
    evidence < /tmp/enable
    systemctl log-level info
    journal_since "$c" > /tmp/start
    grep -e 'mounted at' -e 'READY=1' -e 'Changed start -> running' -e 'Started ' /tmp/start | evidence
    ready=$(line_of /tmp/start 'READY=1')
    running=$(line_of /tmp/start 'Changed start -> running')
    echo "StatusText=$(systemctl show -p StatusText --value dmaemu)" | evidence
    [ "$rc" = 0 ] && [ "$(systemctl is-active dmaemu)" = active ] && [ "$ready" -gt 0 ] && [ "$running" -gt "$ready" ]
}
check active-after-ready start

visible() {
    pid=$(mainpid)
    findmnt -n -o TARGET,SOURCE,FSTYPE,OPTIONS /mnt | evidence
    printf 'mount namespace: this shell %s, PID 1 %s, dmaemud %s\n' "$(readlink /proc/self/ns/mnt)" \
        "$(readlink /proc/1/ns/mnt)" "$(readlink /proc/"$pid"/ns/mnt)" | evidence
    [ "$(readlink /proc/self/ns/mnt)" = "$(readlink /proc/"$pid"/ns/mnt)" ] &&
        [ "$(readlink /proc/1/ns/mnt)" = "$(readlink /proc/"$pid"/ns/mnt)" ] &&
        findmnt -n -o FSTYPE /mnt | grep -qx fuse.dmaemu
}
check mount-visible-outside-the-service visible
# Nothing below can pass when the tree is not there.
[ "$last" = 0 ] || finish "stopped: the mount is not visible outside the service"

pools() {
    cat /mnt/devices/*/pools > /tmp/pools
    evidence < /tmp/pools
    [ "$(grep -c '^poolinfo - 0.1$' /tmp/pools)" = 2 ] && grep -q '^chain pool       373959 373984  128 11687$' /tmp/pools &&
        grep -q '^prp list page       0    0 4096  0$' /tmp/pools
}
check pools-listed pools

# 128-byte blocks, 4096 / 128 = 32 to a page: 1000 blocks take ceil(1000 / 32) = 32 pages,
# 32 * 32 = 1024 blocks (stack, v6.4+).
alloc() {
    echo "vmtest 128 16" > $gen/create_pool && echo 1000 > $gen/dma_pools/vmtest/alloc || return 1
    { echo "nr_active $(cat $gen/dma_pools/vmtest/nr_active)"; cat $gen/pools; } | evidence
    [ "$(cat $gen/dma_pools/vmtest/nr_active)" = 1000 ] && grep -q '^vmtest           1000 1024  128 32$' $gen/pools
}
check alloc-changes-nr-active alloc

kmsg() {
    grep -e 'probe took' -e 'mounted at' /mnt/kmsg | evidence
    [ "$(grep -c 'probe took' /mnt/kmsg)" = 3 ]
}
check kmsg-shows-probes kmsg

# --- journald: printk levels become priorities ---
priorities() {
    c=$(cursor)
    echo "bad 3 3" > $gen/create_pool 2>/dev/null && return 1
    echo "dm-crypt dm-0 lower=0000:01:00.0 key=$key" > /mnt/control/add_device || return 1
    echo remove > $nvme/state 2>/dev/null && return 1
    sleep 1
    journalctl --no-pager -u dmaemu -p err -b > /tmp/err
    echo "journalctl -u dmaemu -p err:" | cat - /tmp/err | evidence
    journalctl --no-pager -u dmaemu --after-cursor="$c" -o json | grep -o '"PRIORITY":"[0-9]"\|"MESSAGE":"[^"]*"' | evidence
    journalctl --no-pager -u dmaemu -p info..info -b | grep 'probe took' | head -n1 | sed 's/^/-p info: /' | evidence
    grep -q 'generic 0000:00:04.0: create_pool bad: ' /tmp/err && grep -q 'nvme 0000:01:00.0: in use by dm-0' /tmp/err &&
        ! journalctl -u dmaemu -p err -b | grep -q 'probe took' &&
        journalctl -u dmaemu -p info..info -b | grep -q 'probe took'
}
check journal-priorities priorities

# --- modes: another user reads what the modes let everyone read, and writes nothing ---
others() {
    id dmaemu-vm > /dev/null 2>&1 || useradd --system --no-create-home --shell /usr/sbin/nologin dmaemu-vm
    as_user() { setpriv --reuid=dmaemu-vm --regid=nogroup --clear-groups --reset-env sh -c "$1" 2>&1; }
    ls -l $gen/pools $gen/dma_pools/vmtest/alloc $nvme/disk /mnt/kernel/debug/swiotlb/io_tlb_used | evidence
    w=$(as_user "echo 5 > $gen/dma_pools/vmtest/alloc") && return 1
    r=$(as_user "cat $gen/pools") || return 1
    d=$(as_user "head -c 512 $nvme/disk") && return 1
    s=$(as_user "cat /mnt/kernel/debug/swiotlb/io_tlb_used") && return 1
    c=$(as_user "echo nvme x > /mnt/control/add_device") && return 1
    printf 'write alloc: %s\nread pools (0444): %s\nread disk (0600): %s\nread io_tlb_used (0400): %s\nadd_device: %s\n' \
        "$w" "$(echo "$r" | grep vmtest)" "$d" "$s" "$c" | evidence
    [ "$(cat $gen/dma_pools/vmtest/nr_active)" = 1000 ] && [ ! -e /mnt/devices/x ] &&
        [ "$(printf '%s\n' "$w" "$d" "$s" "$c" | grep -c 'Permission denied')" = 4 ]
}
check others-follow-the-modes others

# --- stop: STOPPING=1, exit 0, unmounted, nothing left; dm-0 goes before its disk ---
stop() {
    c=$(cursor)
    systemctl log-level debug
    systemctl stop dmaemu
    systemctl log-level info
    journal_since "$c" > /tmp/stop
    grep -e 'STOPPING=1' -e 'remove took' -e 'in use' -e 'Deactivated' -e 'unmounted' /tmp/stop | evidence
    systemctl show -p ExecMainCode -p ExecMainStatus -p Result dmaemu | evidence
    left=$(pgrep -a -x dmaemud; pgrep -a -x fusermount3)
    echo "mounted: $(findmnt -n /mnt || echo no); processes left: ${left:-none}" | evidence
    dm=$(line_of /tmp/stop 'dm-0: remove took')
    disk=$(line_of /tmp/stop '0000:01:00.0: remove took')
    grep -q 'STOPPING=1' /tmp/stop && [ "$(systemctl show -p ExecMainStatus --value dmaemu)" = 0 ] &&
        [ "$(systemctl show -p Result --value dmaemu)" = success ] && ! mountpoint -q /mnt && [ -z "$left" ] &&
        [ "$dm" -gt 0 ] && [ "$disk" -gt "$dm" ] && ! grep -q 'in use by' /tmp/stop
}
check stop-is-clean stop

# --- SIGKILL: Restart=on-failure brings it back and the mount works again ---
killed() {
    systemctl reset-failed dmaemu
    systemctl start dmaemu || return 1
    old=$(mainpid) before=$(restarts) c=$(cursor)
    systemctl kill -s KILL dmaemu
    wait_restarted "$old" 60 || { echo "not restarted" | evidence; return 1; }
    journal_since "$c" | grep -e 'status=9/KILL' -e 'Scheduled restart' -e 'mounted at' -e 'Started ' | evidence
    left=$(pgrep -x dmaemud | grep -vx "$(mainpid)")
    mounts=$(awk '$5 == "/mnt"' /proc/self/mountinfo | wc -l)
    echo "NRestarts $before -> $(restarts); old main process $old: $(kill -0 "$old" 2>/dev/null && echo alive || echo gone); fuse mounts at /mnt: $mounts; other dmaemud: ${left:-none}" | evidence
    cat $gen/../0000:85:00.0/pools > /dev/null && [ "$(restarts)" = $((before + 1)) ] && ! kill -0 "$old" 2>/dev/null &&
        [ "$mounts" = 1 ] && [ -z "$left" ]
}
check restarted-after-sigkill killed

# --- watchdog: a daemon that stops answering is killed and restarted ---
watchdog() {
    mkdir -p /run/systemd/system/dmaemu.service.d
    printf '[Service]\nWatchdogSec=3s\n' > /run/systemd/system/dmaemu.service.d/50-vm-watchdog.conf
    systemctl daemon-reload && systemctl reset-failed dmaemu && systemctl restart dmaemu || return 1
    old=$(mainpid) before=$(restarts) c=$(cursor)
    echo "WatchdogUSec=$(systemctl show -p WatchdogUSec --value dmaemu); SIGSTOP to $old" | evidence
    kill -STOP "$old"
    wait_restarted "$old" 90 || { echo "not restarted" | evidence; return 1; }
    journal_since "$c" | grep -e 'Watchdog timeout' -e 'Killing process' -e 'Main process exited' -e 'Scheduled restart' -e 'Started ' | evidence
    ok=0
    journal_since "$c" | grep -q 'Watchdog timeout' && [ "$(restarts)" = $((before + 1)) ] && cat $gen/../0000:85:00.0/pools > /dev/null || ok=1
    rm -f /run/systemd/system/dmaemu.service.d/50-vm-watchdog.conf
    systemctl daemon-reload
    return $ok
}
check restarted-by-the-watchdog watchdog

# --- a daemon that cannot start is given up on, not restarted forever ---
crashloop() {
    systemctl stop dmaemu
    systemctl reset-failed dmaemu
    printf '[Service]\nExecStart=\nExecStart=/usr/local/bin/dmaemud /mnt --config /nonexistent.toml\n' \
        > /run/systemd/system/dmaemu.service.d/50-vm-broken.conf
    systemctl daemon-reload
    c=$(cursor)
    systemctl start dmaemu 2> /dev/null
    for _ in $(seq 900); do journal_since "$c" | grep -q 'Start request repeated too quickly' && break; sleep 0.1; done
    journal_since "$c" | grep -e 'nonexistent' -e 'Scheduled restart' -e 'Start request repeated' -e 'Failed with' | evidence
    state=$(systemctl is-active dmaemu) n=$(restarts)
    echo "ActiveState=$state NRestarts=$n" | evidence
    sleep 3
    rm -f /run/systemd/system/dmaemu.service.d/50-vm-broken.conf
    systemctl daemon-reload
    # Five starts in the interval (StartLimitBurst=5): the first and four restarts; the
    # fifth restart is refused, and nothing starts it again.
    [ "$state" = failed ] && [ "$n" = 5 ] && [ "$(restarts)" = 5 ] &&
        journal_since "$c" | grep -q 'dmaemud: /nonexistent.toml: cannot read: No such file or directory'
    ok=$?
    systemctl reset-failed dmaemu
    return $ok
}
check crash-loop-stops crashloop

finish

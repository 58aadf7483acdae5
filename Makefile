# dmaemu: `make run` builds and runs, `make test` installs what the tests need and runs them.
SWIFT  ?= $(shell command -v swift 2>/dev/null || echo /opt/swift/usr/bin/swift)
SHARED ?= ../shared
# Debian packages the build, the tests (mkfs.ext4, setpriv, losetup, modprobe) and the C
# limits of $(SHARED)/bench need.
DEBS   := gcc libc6-dev pkg-config libfuse3-dev fuse3 e2fsprogs util-linux mount kmod
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
BENCH_OUT ?= bench-results
PREFIX ?= /usr/local
MOUNTPOINT ?= /mnt

.PHONY: deps build test run bench clean install uninstall default-config

deps:
	@missing=""; for p in $(DEBS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  $(SUDO) apt-get update -q && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q --no-install-recommends $$missing; \
	fi
	@# The dm-crypt test decrypts the lower disk with Python's cryptography (OpenSSL's AES-XTS).
	@python3 -c 'import cryptography' 2>/dev/null || python3 -m pip install -q cryptography || \
	  { $(SUDO) apt-get install -y -q --no-install-recommends python3-cryptography; }

# Config/dmaemu.toml compiled in (ConfigFileTests fails when the two differ).
default-config:
	{ printf '// Config/dmaemu.toml, compiled in: the machine dmaemud runs with no --config. A test keeps\n// the two identical; `make default-config` rewrites this file.\nlet defaultConfigText = #"""\n'; \
	  cat Config/dmaemu.toml; printf '"""#\n'; } > Sources/Daemon/DefaultConfig.swift

build:
	$(SWIFT) build

test: deps build
	$(SWIFT) test

# The default machine mounted at $(MOUNTPOINT), in the foreground; Ctrl-C unmounts.
run: deps
	$(SWIFT) build -c release --product dmaemud
	mkdir -p $(MOUNTPOINT)
	.build/release/dmaemud $(MOUNTPOINT)

install: deps
	$(SWIFT) build -c release --product dmaemud
	install -D -m 0755 .build/release/dmaemud $(DESTDIR)$(PREFIX)/bin/dmaemud
	install -D -m 0644 systemd/dmaemu.service $(DESTDIR)/etc/systemd/system/dmaemu.service
	[ -e $(DESTDIR)/etc/dmaemu/dmaemu.toml ] || install -D -m 0644 Config/dmaemu.toml $(DESTDIR)/etc/dmaemu/dmaemu.toml
	install -D -m 0644 README.md $(DESTDIR)$(PREFIX)/share/doc/dmaemu/README.md
	-systemctl daemon-reload 2>/dev/null

uninstall:
	-systemctl disable --now dmaemu.service 2>/dev/null
	rm -f $(DESTDIR)$(PREFIX)/bin/dmaemud $(DESTDIR)/etc/systemd/system/dmaemu.service
	@echo "kept /etc/dmaemu/dmaemu.toml (remove it by hand if you no longer want it)"
	rm -rf $(DESTDIR)$(PREFIX)/share/doc/dmaemu
	-systemctl daemon-reload 2>/dev/null

# The benchmarks, with the C limits of $(SHARED)/bench measured in the same run.
bench: deps
	$(SWIFT) build -c release --product dmaemu-bench
	$(SWIFT) build -c release --product dmaemud
	mkdir -p $(BENCH_OUT)
	cc -O2 -o $(BENCH_OUT)/pool_limit $(SHARED)/bench/pool_limit.c
	.build/release/dmaemu-bench mpt3sas --limit $(BENCH_OUT)/pool_limit | tee $(BENCH_OUT)/mpt3sas.txt
	.build/release/dmaemu-bench dmapool-test | tee $(BENCH_OUT)/dmapool-test.txt
	cc -O2 -o $(BENCH_OUT)/memcpy_limit $(SHARED)/bench/memcpy_limit.c
	for g in 1 16; do .build/release/dmaemu-bench map -t 1 -s 5 -d 1 -g $$g --limit $(BENCH_OUT)/memcpy_limit; done | tee $(BENCH_OUT)/map.txt
	for flags in "" --no-debugfs; do for t in 1 2; do \
	  .build/release/dmaemu-bench map -t $$t -s 5 -d 1 --json $$flags; done; done | tee $(BENCH_OUT)/map-threads.jsonl
	SHARED=$(SHARED) BENCH_OUT=$(BENCH_OUT) scripts/bench-fuse.sh
	.build/release/dmaemu-bench probe | tee $(BENCH_OUT)/probe.txt
	.build/release/dmaemu-bench swiotlb-io --runs 10 | tee $(BENCH_OUT)/swiotlb-io.txt
	.build/release/dmaemu-bench dmcrypt | tee $(BENCH_OUT)/dmcrypt.txt
	.build/release/dmaemu-bench dmcrypt --cipher cipher_null-ecb | tee -a $(BENCH_OUT)/dmcrypt.txt

clean:
	rm -rf .build $(BENCH_OUT)

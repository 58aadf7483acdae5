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

.PHONY: deps build test run bench bench-docs bench-micro bench-malloc clean install uninstall default-config

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
	$(MAKE) bench-malloc

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

# Every benchmark, with the C limits of $(SHARED)/bench measured in the same run:
# $(BENCH_OUT)/results.json, report.md and the SVG plots (about 8 minutes on 2 cores).
bench: deps
	$(SWIFT) build -c release --product dmaemu-bench
	$(SWIFT) build -c release --product dmaemud
	.build/release/dmaemu-bench all --out $(BENCH_OUT) --shared $(SHARED)

# The micro-benchmarks of Benchmarks/ (package-benchmark), each hot path one operation
# at a time. bench-malloc runs them against Thresholds/: any malloc in steady state fails.
bench-micro:
	cd Benchmarks && $(SWIFT) package benchmark

bench-malloc:
	cd Benchmarks && $(SWIFT) package benchmark thresholds check --no-progress

# The README's Performance tables and docs/'s plots, from $(BENCH_OUT)/results.json
# (running `make bench` first when there is none).
bench-docs:
	[ -e $(BENCH_OUT)/results.json ] || $(MAKE) bench
	$(SWIFT) build -c release --product dmaemu-bench
	.build/release/dmaemu-bench docs --results $(BENCH_OUT)/results.json --readme README.md --docs docs

clean:
	rm -rf .build Benchmarks/.build $(BENCH_OUT)

# dmaemu: `make run` builds and runs, `make test` installs what the tests need and runs them.
SWIFT  ?= $(shell command -v swift 2>/dev/null || echo /opt/swift/usr/bin/swift)
# Debian packages the build, the tests (mkfs.ext4, setpriv, losetup, modprobe, useradd, strace, ss, pgrep, fio) and the C
# limits of tools/limits need.
DEBS   := gcc libc6-dev pkg-config libfuse3-dev libssl-dev openssl fuse3 e2fsprogs util-linux mount kmod passwd strace iproute2 procps fio
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
# TOMLKit's toml++ asserts, in every build (SwiftPM sets no NDEBUG), where its parser
# would report an error: a '}' where an array expects a value ("dma=[[}t", found by the
# config fuzzer) aborted dmaemud. Built with NDEBUG it says "could not determine value type".
TOML   := -Xcxx -DNDEBUG
BENCH_OUT ?= bench-results
PREFIX ?= /usr/local
MOUNTPOINT ?= /mnt

.PHONY: deps build test check-architecture run vm-test oracle oracle-check bench bench-docs bench-micro bench-malloc fuzz sanitize clean install uninstall default-config

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
	$(SWIFT) build $(TOML)

test: deps build check-architecture
	$(SWIFT) test $(TOML)
	tools/testing/record-test.sh
	tools/testing/map-benchmark-test.sh
	$(MAKE) bench-malloc

# ARCHITECTURE.md's module table against Package.swift and the sources' imports.
check-architecture:
	python3 tools/check-architecture.py

# The default machine mounted at $(MOUNTPOINT), in the foreground; Ctrl-C unmounts.
run: deps
	$(SWIFT) build $(TOML) -c release --product dmaemud
	mkdir -p $(MOUNTPOINT)
	.build/release/dmaemud $(MOUNTPOINT)

# The Swift runtime is linked in (--static-swift-stdlib): the installed daemon needs only
# libfuse3, not the toolchain. Under DESTDIR (a package, a VM image) systemd is not told.
install: deps
	$(SWIFT) build $(TOML) -c release --product dmaemud --static-swift-stdlib --scratch-path .build-static
	$(SWIFT) build $(TOML) -c release --product dmaemu-replay --static-swift-stdlib --scratch-path .build-static
	install -D -m 0755 .build-static/release/dmaemud $(DESTDIR)$(PREFIX)/bin/dmaemud
	install -D -m 0755 .build-static/release/dmaemu-replay $(DESTDIR)$(PREFIX)/bin/dmaemu-replay
	install -D -m 0755 tools/dmaemu-record $(DESTDIR)$(PREFIX)/bin/dmaemu-record
	sed 's|/usr/local/|$(PREFIX)/|g' systemd/dmaemu.service > .build-static/dmaemu.service
	install -D -m 0644 .build-static/dmaemu.service $(DESTDIR)/etc/systemd/system/dmaemu.service
	[ -e $(DESTDIR)/etc/dmaemu/dmaemu.toml ] || install -D -m 0644 Config/dmaemu.toml $(DESTDIR)/etc/dmaemu/dmaemu.toml
	install -D -m 0644 README.md $(DESTDIR)$(PREFIX)/share/doc/dmaemu/README.md
	[ -n "$(DESTDIR)" ] || systemctl daemon-reload 2>/dev/null || true

uninstall:
	-systemctl disable --now dmaemu.service 2>/dev/null
	rm -f $(DESTDIR)$(PREFIX)/bin/dmaemud $(DESTDIR)$(PREFIX)/bin/dmaemu-replay $(DESTDIR)$(PREFIX)/bin/dmaemu-record
	rm -f $(DESTDIR)/etc/systemd/system/dmaemu.service
	@echo "kept /etc/dmaemu/dmaemu.toml (remove it by hand if you no longer want it)"
	rm -rf $(DESTDIR)$(PREFIX)/share/doc/dmaemu
	-systemctl daemon-reload 2>/dev/null

# Every benchmark, with the C limits of tools/limits measured in the same run:
# $(BENCH_OUT)/results.json, report.md and the SVG plots (about 8 minutes on 2 cores).
bench: deps
	$(SWIFT) build $(TOML) -c release --product dmaemu-bench
	$(SWIFT) build $(TOML) -c release --product dmaemud
	.build/release/dmaemu-bench all --out $(BENCH_OUT)

# The micro-benchmarks of Benchmarks/ (package-benchmark), each hot path one operation
# at a time. bench-malloc runs them against Thresholds/: any malloc in steady state fails.
bench-micro:
	cd Benchmarks && $(SWIFT) package benchmark

bench-malloc:
	cd Benchmarks && $(SWIFT) package benchmark thresholds check --no-progress

# docs/benchmarks.md's Performance tables and docs/'s plots, from $(BENCH_OUT)/results.json
# (running `make bench` first when there is none).
bench-docs:
	[ -e $(BENCH_OUT)/results.json ] || $(MAKE) bench
	$(SWIFT) build $(TOML) -c release --product dmaemu-bench
	.build/release/dmaemu-bench docs --results $(BENCH_OUT)/results.json --page docs/benchmarks.md --docs docs

# The whole test suite under ThreadSanitizer, then under AddressSanitizer (with its leak
# checker), each in a build directory of its own; any report fails the run. TSan's shadow
# layout needs ASLR off on kernels with 28+ bits of mmap randomness: setarch -R. The
# suites that mount run too (with a TSan-built dmaemud): our FUSE loop ends its workers
# without pthread_cancel, which TSan could not follow in libfuse's (google/sanitizers#646).
SANITIZE_TESTS := debug/dmaemuPackageTests.xctest --testing-library swift-testing
sanitize: deps
	$(SWIFT) build $(TOML) --build-tests --sanitize=thread --scratch-path .build-tsan
	TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1" setarch $$(uname -m) -R .build-tsan/$(SANITIZE_TESTS)
	$(SWIFT) build $(TOML) --build-tests --sanitize=address --scratch-path .build-asan
	ASAN_OPTIONS=detect_leaks=1 LSAN_OPTIONS=suppressions=$(CURDIR)/Fuzz/lsan.supp .build-asan/$(SANITIZE_TESTS)

# libFuzzer (with AddressSanitizer) on every parser of written text, $(FUZZ_SECONDS) s per
# target, from the seed corpus in Fuzz/Corpus/<target>/. New inputs go to Fuzz/.work/; a
# crash stops here with the input's path: copy it into Fuzz/Corpus/<target>/crash-<what>
# (FuzzTests replays it in `make test`) and fix the parser.
FUZZ_SECONDS ?= 60
FUZZ_TARGETS := store io map_benchmark swiotlb config trace
fuzz: deps
	@mkdir -p Fuzz/.work
	@# The linker warns about every ASan symbol it cannot export: the log keeps them.
	cd Fuzz && $(SWIFT) build $(TOML) -Xswiftc -sanitize=fuzzer,address > .work/build.log 2>&1 || \
	  { grep -v "Cannot export local symbol" .work/build.log | tail -30; exit 1; }
	@for t in $(FUZZ_TARGETS); do \
	  mkdir -p Fuzz/.work/$$t; \
	  if FUZZ_TARGET=$$t SWIFT_BACKTRACE=enable=no LSAN_OPTIONS=suppressions=Fuzz/lsan.supp Fuzz/.build/debug/dmaemu-fuzz -max_total_time=$(FUZZ_SECONDS) \
	       -timeout=60 -dict=Fuzz/Dictionaries/$$t.dict -artifact_prefix=Fuzz/.work/$$t- -print_final_stats=1 \
	       Fuzz/.work/$$t Fuzz/Corpus/$$t > Fuzz/.work/$$t.log 2>&1; then \
	    echo "fuzz $$t: $$(grep -E '^stat::number_of_executed_units' Fuzz/.work/$$t.log | awk '{print $$2}') inputs in $(FUZZ_SECONDS) s, $$(grep -E 'DONE +cov' Fuzz/.work/$$t.log | grep -oE 'cov: [0-9]+ ft: [0-9]+ corp: [0-9]+'), no crash"; \
	  else \
	    grep -vE '^ +#[0-9]+ 0x' Fuzz/.work/$$t.log | tail -40; \
	    echo "fuzz $$t: FAILED; the input is $$(ls -t Fuzz/.work/$$t-* | head -1)"; exit 1; \
	  fi; \
	done

# dmaemu.service on a real systemd: Debian 12 booted under QEMU with dmaemud installed as
# `make install` puts it (tools/testing/vm/; about 3 minutes, the first time 5 more to
# build the guest, which is cached in /var/cache/dmaemu).
vm-test: deps
	tools/testing/vm/systemd-test.sh

# The real kernels as the oracle: Debian's 6.1 and 6.12 booted under QEMU with
# tools/oracle/dmaemu_oracle.ko (built against their headers) run tools/oracle/experiments;
# `oracle` writes what they printed to Tests/OracleTests/Fixtures/, which `make test`
# holds the engines to; `oracle-check` (CI) fails when the kernels no longer print what
# the committed fixtures hold. About a minute once the kernels are cached.
oracle:
	tools/oracle/oracle.sh

oracle-check:
	tools/oracle/oracle.sh --check

clean:
	rm -rf .build .build-tsan .build-asan Benchmarks/.build Fuzz/.build Fuzz/.work $(BENCH_OUT)

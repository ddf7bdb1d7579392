# whatsapp-api — the commands a newcomer and CI use.
#   make run     build (release) and start the server, configured by the
#                environment or a .env file, which the binary itself reads
#                (WHATSAPP_BACKEND=simulator for the sandbox)
#   make test    every test: unit, DB, in-process HTTP, the browser test, the
#                deployment files and the container image built and run
#   make bench   the performance table (targets and numbers in BENCHMARKS.md);
#                BENCH_MESSAGES=1000000 for the large corpus
#   make bench-scale  the same workloads at 10k, 100k and 1M messages
#   make static  a static x86_64 musl binary
#   make image   the container image from scratch (needs podman or docker)

CARGO ?= cargo

.PHONY: run test test-rust test-compat test-fuzz test-browser test-manifests test-container lint stress soak bench bench-tools bench-build bench-scale static image clean

run:
	$(CARGO) build --release
	./target/release/whatsapp-api serve

test: lint test-rust test-compat test-fuzz test-browser test-manifests test-container

test-rust:
	$(CARGO) test --all-targets

# The Node server's v1 API driven with curl, as its clients call it.
test-compat:
	tests/compat/node_api.sh

# The dashboard in headless Chromium against the real binary (simulator
# backend); installs chromium and chromium-driver with apt-get if missing.
test-browser:
	bash tests/browser/run.sh

# Bounded API fuzzing against the OpenAPI document (schemathesis from PyPI).
test-fuzz:
	MAX_EXAMPLES=25 tests/fuzz/schemathesis.sh

# The Kubernetes manifests (kubernetes-validate --strict from PyPI, offline)
# and the systemd units (systemd-analyze verify).
test-manifests:
	tests/deploy/manifests.sh

# `make image` (so a release musl build), then the image run with podman:
# health, a message kept across a restart on the same volume, non-root.
# Installs podman with apt-get if missing.
test-container:
	tests/deploy/container.sh

# Longer reliability runs (not in CI): many kill -9 cycles, deeper fuzzing.
stress:
	CRASH_CYCLES=40 $(CARGO) test --test it crash -- --nocapture
	MAX_EXAMPLES=300 tests/fuzz/schemathesis.sh

# 30 minutes of mixed load; prints RSS and open file descriptors over time.
soak:
	tests/soak/soak.sh

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --all-targets -- -D warnings

# A fully static x86_64 binary: musl libc, bundled SQLite and ring compiled
# with musl-gcc. Installs the rustup target and Debian's musl-tools when they
# are missing (both steps do nothing when already there).
MUSL_TARGET := x86_64-unknown-linux-musl
STATIC_BIN = $(or $(CARGO_TARGET_DIR),target)/$(MUSL_TARGET)/release/whatsapp-api
# podman when present, else docker.
ENGINE ?= $(shell command -v podman >/dev/null 2>&1 && echo podman || echo docker)
IMAGE ?= localhost/whatsapp-api:latest

static:
	@rustup target list --installed | grep -qx '$(MUSL_TARGET)' || rustup target add $(MUSL_TARGET)
	@command -v musl-gcc >/dev/null 2>&1 || { \
		if [ "$$(id -u)" = 0 ]; then apt-get update && apt-get install -y --no-install-recommends musl-tools; \
		else sudo apt-get update && sudo apt-get install -y --no-install-recommends musl-tools; fi; }
	@# musl targets link statically by default; CC is for the C parts.
	CC_x86_64_unknown_linux_musl=musl-gcc \
		$(CARGO) build --release --locked --target $(MUSL_TARGET)
	@# A static-pie (static and still address-randomised; `file` says
	@# "static-pie linked", `ldd` "statically linked"): refuse anything that
	@# would need a dynamic loader or a shared library.
	@if command -v readelf >/dev/null 2>&1; then \
		if readelf -lW $(STATIC_BIN) | grep -q INTERP || readelf -dW $(STATIC_BIN) | grep -q NEEDED; then \
			echo "$(STATIC_BIN) is not static" >&2; exit 1; fi; fi
	@if command -v file >/dev/null 2>&1; then file $(STATIC_BIN); fi
	@ls -l $(STATIC_BIN)
	@$(STATIC_BIN) --version

# The image holds the binary `make static` just built (nothing is pulled from
# a registry: the Containerfile starts FROM scratch). Its build context is a
# directory prepared here: the binary, rootfs/ (an empty /tmp, mode 1777, for
# SQLite's temporary files) and owned/ (an empty /data for the runtime user).
# podman's default OCI format has no HEALTHCHECK: build in Docker format.
IMAGE_CONTEXT = $(or $(CARGO_TARGET_DIR),target)/image

image: static
	rm -rf $(IMAGE_CONTEXT)
	mkdir -p $(IMAGE_CONTEXT)/rootfs/tmp $(IMAGE_CONTEXT)/owned/data
	chmod 1777 $(IMAGE_CONTEXT)/rootfs/tmp
	chmod 0700 $(IMAGE_CONTEXT)/owned/data
	cp $(STATIC_BIN) $(IMAGE_CONTEXT)/whatsapp-api
	$(ENGINE) build $(if $(findstring podman,$(ENGINE)),--format docker) \
		-f Containerfile -t $(IMAGE) $(IMAGE_CONTEXT)
	@$(ENGINE) image ls $(IMAGE)

# The load generator is Debian's wrk; installed when missing (idempotent).
bench-tools:
	@command -v wrk >/dev/null 2>&1 || { \
		SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
		$$SUDO apt-get update && $$SUDO apt-get install -y wrk; }

BENCH_MESSAGES ?= 100000
BENCH_ARGS ?=

# Two cargo runs, the server last: an example build turns on dev-dependency
# features (the fake server's danger-skip-cert-chain-verify), and the server
# measured must be the one that ships, without them.
bench-build:
	$(CARGO) build --release --example bench
	$(CARGO) build --release --bin whatsapp-api

bench: bench-tools bench-build
	./target/release/examples/bench --messages $(BENCH_MESSAGES) $(BENCH_ARGS)

bench-scale: bench-tools bench-build
	./target/release/examples/bench --scale $(BENCH_ARGS)

clean:
	$(CARGO) clean

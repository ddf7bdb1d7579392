# whatsapp-api — the commands a newcomer and CI use.
#   make run     build (release) and start the server, configured by the
#                environment or a .env file (WHATSAPP_BACKEND=simulator for the sandbox)
#   make test    every test: unit, DB, in-process HTTP, and the browser test
#   make bench   the performance table of SPEC §12 (see BENCHMARKS.md);
#                BENCH_MESSAGES=1000000 for the large corpus
#   make bench-scale  the same workloads at 10k, 100k and 1M messages
#   make static  a static x86_64 musl binary
#   make image   the container image (needs podman or docker)

-include .env
export

CARGO ?= cargo

.PHONY: run test test-rust lint bench bench-tools bench-scale static image clean

run:
	$(CARGO) build --release
	./target/release/whatsapp-api serve

test: lint test-rust

test-rust:
	$(CARGO) test --all-targets

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --all-targets -- -D warnings

# The load generator is Debian's wrk; installed when missing (idempotent).
bench-tools:
	@command -v wrk >/dev/null 2>&1 || { \
		SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
		$$SUDO apt-get update && $$SUDO apt-get install -y wrk; }

BENCH_MESSAGES ?= 100000
BENCH_ARGS ?=

bench: bench-tools
	$(CARGO) build --release --bin whatsapp-api --example bench
	./target/release/examples/bench --messages $(BENCH_MESSAGES) $(BENCH_ARGS)

bench-scale: bench-tools
	$(CARGO) build --release --bin whatsapp-api --example bench
	./target/release/examples/bench --scale $(BENCH_ARGS)

clean:
	$(CARGO) clean

# whatsapp-api — the commands a newcomer and CI use.
#   make run     build (release) and start the server, configured by the
#                environment or a .env file (WHATSAPP_BACKEND=simulator for the sandbox)
#   make test    every test: unit, DB, in-process HTTP, and the browser test
#   make bench   the performance table of SPEC §12 (see BENCHMARKS.md)
#   make static  a static x86_64 musl binary
#   make image   the container image (needs podman or docker)

-include .env
export

CARGO ?= cargo

.PHONY: run test test-rust test-compat test-fuzz lint stress soak bench bench-scale static image clean

run:
	$(CARGO) build --release
	./target/release/whatsapp-api serve

test: lint test-rust test-compat test-fuzz

test-rust:
	$(CARGO) test --all-targets

# The Node server's v1 API driven with curl, as its clients call it.
test-compat:
	tests/compat/node_api.sh

# Bounded API fuzzing against the OpenAPI document (schemathesis from PyPI).
test-fuzz:
	MAX_EXAMPLES=25 tests/fuzz/schemathesis.sh

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

clean:
	$(CARGO) clean

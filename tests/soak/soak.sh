#!/usr/bin/env bash
# Soak test (not in CI): SOAK_SECS (default 1800) of mixed load against the
# release binary with the simulator — inbox reads, searches, ingest with a
# webhook to a local receiver, replies, status changes — sampling the server's
# RSS and open file descriptors every SAMPLE_SECS. Prints the curve and fails
# if either keeps growing (last quarter's mean > 1.25 x second quarter's).
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build --release --quiet
exec python3 tests/soak/soak.py ./target/release/whatsapp-api

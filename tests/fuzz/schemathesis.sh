#!/usr/bin/env bash
# API fuzzing: schemathesis (from PyPI) derives requests from our own OpenAPI
# document and checks every answer against it: no 5xx, status codes, content
# types, headers and response bodies as documented, 405s with Allow, auth
# really enforced. Runs against the real binary with the simulator on
# 127.0.0.1. Installs schemathesis into target/tools/ on first use; it runs
# in a temporary directory, so its caches never land in the repository.
#
# The two input-strictness heuristics (positive_data_acceptance,
# negative_data_rejection) are left out: they judge whether validation is
# exactly as strict as the schema, not whether answers contradict it.
# Routes that take WhatsApp down on purpose (simulator connection and
# fail-sends, session logout) are left out so that a 5xx is always a bug;
# the integration tests cover them. So is the event stream, whose answer
# never ends (tests/it/events.rs covers it, bad parameters included).
#
# A crash of the tool itself is not a finding about the server. CPython
# before 3.11.8 and 3.12.2 can raise `SystemError: AST constructor recursion
# depth mismatch` when two threads parse source at once (hypothesis does,
# to describe its filters), so schemathesis runs with one worker: with two,
# about one run in three failed that way. Should an internal error of
# Python's still end a run (no failed check, every error a `SystemError`),
# the run is made again, up to twice. Anything else (a failed check, a
# connection error, a server that died or logged a panic) fails at once.
#
#   MAX_EXAMPLES=25 SEED=42 tests/fuzz/schemathesis.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD

MAX_EXAMPLES=${MAX_EXAMPLES:-25}
SEED=${SEED:-42}
VENV=$ROOT/target/tools/schemathesis
# A tool that no longer runs (the checkout moved: a venv's scripts name
# their Python by absolute path) is installed again.
if ! "$VENV/bin/schemathesis" --help >/dev/null 2>&1; then
    rm -rf "$VENV"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet 'schemathesis>=4,<5'
fi

cargo build --quiet
DIR=$(mktemp -d)
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
KEY="fuzz-key-$(python3 -c 'import secrets; print(secrets.token_hex(12))')"
WHATSAPP_BACKEND=simulator DATA_DIR="$DIR/data" PORT="$PORT" API_KEY="$KEY" DASHBOARD_PASSWORD=fuzz-password \
    RATE_LIMIT_PER_MINUTE=0 LOG_LEVEL=warn "$ROOT/target/debug/whatsapp-api" --env-file /dev/null >"$DIR/server.log" 2>&1 &
SERVER=$!
cleanup() { kill "$SERVER" 2>/dev/null || true; wait "$SERVER" 2>/dev/null || true; rm -rf "$DIR"; }
trap cleanup EXIT
healthy() {
    python3 - "$PORT" <<'PY'
import sys, time, urllib.request
for _ in range(200):
    try:
        urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/api/v1/health", timeout=1)
        sys.exit(0)
    except OSError:
        time.sleep(0.05)
sys.exit(1)
PY
}
healthy || { echo "the server did not start:" >&2; cat "$DIR/server.log" >&2; exit 1; }

# fuzz N: one run; its JUnit report is $DIR/run-N/junit.xml.
fuzz() {
    mkdir -p "$DIR/run-$1"
    (cd "$DIR/run-$1" && "$VENV/bin/schemathesis" run "http://127.0.0.1:$PORT/api/v1/openapi.json" \
        --header "X-API-Key: $KEY" \
        --checks all --exclude-checks positive_data_acceptance,negative_data_rejection \
        --exclude-path /api/v1/simulator/connection \
        --exclude-path /api/v1/simulator/fail-sends \
        --exclude-path /api/v1/session/logout \
        --exclude-path /api/v1/events \
        --max-examples "$MAX_EXAMPLES" --seed "$SEED" --workers 1 --no-color \
        --report junit --report-junit-path "$DIR/run-$1/junit.xml")
}

# Exit 0 when a failed run's report holds only Python internal errors of
# the tool (no failed check, no other error). Read as text: a traceback in
# the report can hold characters an XML parser refuses.
only_tool_crashes() {
    python3 - "$1" <<'PY'
import re, sys
try:
    report = open(sys.argv[1], encoding="utf-8", errors="replace").read()
except OSError:
    sys.exit(1)
errors = re.findall(r"<error\b.*?</error>", report, re.S)
crashes = [e for e in errors if "SystemError" in e]
sys.exit(0 if errors and "<failure" not in report and len(crashes) == len(errors) else 1)
PY
}

status=1
for attempt in 1 2 3; do
    status=0
    fuzz "$attempt" || status=$?
    if [ "$status" -eq 0 ] || ! only_tool_crashes "$DIR/run-$attempt/junit.xml"; then
        break
    fi
    echo "schemathesis crashed on an internal Python error (not a finding about the server); running it again" >&2
done

if ! kill -0 "$SERVER" 2>/dev/null || ! healthy; then
    echo "the server stopped answering during the run:" >&2
    tail -n 50 "$DIR/server.log" >&2
    exit 1
fi
if grep -qi "panicked" "$DIR/server.log"; then
    echo "the server logged a panic:" >&2
    grep -i -A3 "panicked" "$DIR/server.log" >&2
    exit 1
fi
exit "$status"

#!/usr/bin/env bash
# API fuzzing: schemathesis (from PyPI) derives requests from our own OpenAPI
# document and checks every answer against it: no 5xx, status codes, content
# types, headers and response bodies as documented, 405s with Allow, auth
# really enforced. Runs against the real binary with the simulator on
# 127.0.0.1. Installs schemathesis into target/tools/ on first use.
#
# The two input-strictness heuristics (positive_data_acceptance,
# negative_data_rejection) are left out: they judge whether validation is
# exactly as strict as the schema, not whether answers contradict it.
# Routes that take WhatsApp down on purpose (simulator connection and
# fail-sends, session logout) are left out so that a 5xx is always a bug;
# the integration tests cover them.
#
#   MAX_EXAMPLES=25 SEED=42 tests/fuzz/schemathesis.sh
set -euo pipefail
cd "$(dirname "$0")/../.."

MAX_EXAMPLES=${MAX_EXAMPLES:-25}
SEED=${SEED:-42}
VENV=target/tools/schemathesis
if [ ! -x "$VENV/bin/schemathesis" ]; then
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet 'schemathesis>=4,<5'
fi

cargo build --quiet
DIR=$(mktemp -d)
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
KEY="fuzz-key-$(python3 -c 'import secrets; print(secrets.token_hex(12))')"
WHATSAPP_BACKEND=simulator DATA_DIR="$DIR" PORT="$PORT" API_KEY="$KEY" DASHBOARD_PASSWORD=fuzz-password \
    RATE_LIMIT_PER_MINUTE=0 LOG_LEVEL=warn ./target/debug/whatsapp-api --env-file /dev/null >"$DIR/server.log" 2>&1 &
SERVER=$!
cleanup() { kill "$SERVER" 2>/dev/null || true; wait "$SERVER" 2>/dev/null || true; rm -rf "$DIR"; }
trap cleanup EXIT
python3 - "$PORT" <<'PY'
import sys, time, urllib.request
for _ in range(200):
    try:
        urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/api/v1/health", timeout=1)
        break
    except OSError:
        time.sleep(0.05)
PY

"$VENV/bin/schemathesis" run "http://127.0.0.1:$PORT/api/v1/openapi.json" \
    --header "X-API-Key: $KEY" \
    --checks all --exclude-checks positive_data_acceptance,negative_data_rejection \
    --exclude-path /api/v1/simulator/connection \
    --exclude-path /api/v1/simulator/fail-sends \
    --exclude-path /api/v1/session/logout \
    --max-examples "$MAX_EXAMPLES" --seed "$SEED" --workers 2 --no-color

if grep -qi "panicked" "$DIR/server.log"; then
    echo "the server logged a panic:" >&2
    grep -i -A3 "panicked" "$DIR/server.log" >&2
    exit 1
fi

#!/usr/bin/env bash
# Times each dashboard page with a large database: 100,000 messages (and as
# many audit rows) written straight into a fresh data dir by
# load_messages.py (in a venv with a recent SQLite), then the release binary
# serves them and curl fetches every page a few times. Not part of `make test`; run by hand:
#   cargo build --release && tests/browser/dashboard_timing.sh [messages] [runs]
set -euo pipefail
cd "$(dirname "$0")/../.."
messages="${1:-100000}"
runs="${2:-5}"
bin=target/release/whatsapp-api
[ -x "$bin" ] || { echo "build it first: cargo build --release" >&2; exit 1; }

dir="$(mktemp -d /tmp/wa-dash-timing-XXXXXX)"
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
export WHATSAPP_BACKEND=simulator HOST=127.0.0.1 PORT="$port" DATA_DIR="$dir/data" \
    API_KEY=timing-key-0123456789abcdef DASHBOARD_PASSWORD=timing-pw \
    RATE_LIMIT_PER_MINUTE=0 LOG_LEVEL=warn
base="http://127.0.0.1:$port"

start_server() {
    "$bin" serve --env-file /dev/null >>"$dir/server.log" 2>&1 &
    pid=$!
    for _ in $(seq 100); do
        curl -fs "$base/api/v1/health" >/dev/null && return 0
        sleep 0.1
    done
    echo "the server did not start" >&2
    exit 1
}
stop_server() { kill "$pid"; wait "$pid" || true; }
trap 'kill "$pid" 2>/dev/null || true; rm -rf "$dir"' EXIT

start_server   # creates the schema
stop_server
venv=target/tools/timing-venv
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import pysqlite3' 2>/dev/null; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet pysqlite3-binary
fi
"$venv/bin/python" "$(dirname "$0")/load_messages.py" "$dir/data/whatsapp-api.db" "$messages"
start_server

curl -fs -H "X-API-Key: $API_KEY" -H 'Content-Type: application/json' \
    -d '{"url":"http://127.0.0.1:9/hook","events":["message.received"],"secret":true}' \
    "$base/api/v1/webhooks" >/dev/null
hook="$(curl -fs -H "X-API-Key: $API_KEY" "$base/api/v1/webhooks" | python3 -c 'import json,sys; print(json.load(sys.stdin)["webhooks"][0]["id"])')"
msg="$(curl -fs -H "X-API-Key: $API_KEY" "$base/api/v1/inbox/all?limit=1" | python3 -c 'import json,sys; print(json.load(sys.stdin)["messages"][0]["id"])')"

printf '%-48s %8s %8s %8s %9s\n' page "min ms" "med ms" "max ms" "bytes"
for path in \
    "/" "/?status=all" "/?status=read&page=200" "/?status=all&page=1600" \
    "/?status=all&search=invoice" "/?phone=1555000012" "/?status=all&phone=1555" "/?status=all&startDate=2026-01-01&endDate=2026-01-31" \
    "/reply/$msg" "/status" "/login" "/webhooks" "/webhooks/$hook" "/settings" \
    "/audit-logs" "/audit-logs?action=dashboard_action" "/audit-logs?page=1000"; do
    times=()
    for _ in $(seq "$runs"); do
        out="$(curl -s -o /dev/null -u "admin:timing-pw" -w '%{http_code} %{time_total} %{size_download}' "$base$path")"
        read -r code t size <<<"$out"
        [ "$code" = 200 ] || { echo "$path answered $code" >&2; exit 1; }
        times+=("$t")
    done
    printf '%s\n' "${times[@]}" | sort -n | awk -v p="$path" -v s="$size" \
        '{ a[NR] = $1 * 1000 } END { printf "%-48s %8.1f %8.1f %8.1f %9d\n", substr(p, 1, 48), a[1], a[int((NR + 1) / 2)], a[NR], s }'
done

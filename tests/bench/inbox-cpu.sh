#!/usr/bin/env bash
# Server CPU time per request of the inbox queries on the common-terms
# corpus, one client, one request at a time: a measure that depends far less
# on what else the machine runs than the wall time does.
#
#   tests/bench/inbox-cpu.sh SERVER DATA_DIR
#
# DATA_DIR holds a common-terms corpus kept by the bench program, e.g.
# bench-data/bench-common-1000000 after
# `./target/release/examples/bench --messages 1000000 --corpus common --keep`.
# SERVER serves it (simulator backend, the bench's settings; a database of
# an older schema is upgraded at start, so keep a copy per binary when
# comparing an older one). For each request: the first one, timed alone
# (the server has kept no total for its filters yet: what a new search
# costs; one with a far-future `endDate` before it, the same rows under other
# filters, has brought their pages into the caches), then enough to take about 1.5 s one after another (curl, a new
# connection each: a repeated search, its total kept); the server's user +
# system CPU time (from /proc, in 10 ms ticks) over those divided by their
# number, and their median wall time.
set -euo pipefail

SERVER=$1
DIR=$2
KEY=bench-api-key-0123456789abcdef0123456789
PORT=$((20000 + RANDOM % 20000))
BASE=http://127.0.0.1:$PORT

DATA_DIR=$DIR HOST=127.0.0.1 PORT=$PORT WHATSAPP_BACKEND=simulator \
    RATE_LIMIT_PER_MINUTE=0 API_KEY=$KEY DASHBOARD_PASSWORD=bench-dashboard-password \
    LOG_LEVEL=warn "$SERVER" serve --env-file /dev/null >"$DIR/inbox-cpu-server.log" 2>&1 &
PID=$!
trap 'kill $PID 2>/dev/null; wait $PID 2>/dev/null || true' EXIT
# An upgrade of a million messages runs before the server listens.
for _ in $(seq 1 1200); do
    curl -sf -o /dev/null "$BASE/api/v1/health" && break
    kill -0 $PID 2>/dev/null || { cat "$DIR/inbox-cpu-server.log"; exit 1; }
    sleep 0.1
done

ticks() { awk '{print $14 + $15}' "/proc/$PID/stat"; }
get() { curl -s -o /dev/null -w '%{time_total}' -H "X-API-Key: $KEY" "$BASE$1"; }

echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
echo
echo "| request | first request | server CPU per request after it | median wall time | total |"
echo "|---|---:|---:|---:|---:|"
for path in \
    "/api/v1/inbox/all?search=refund%20status" \
    "/api/v1/inbox?search=refund%20status" \
    "/api/v1/inbox/all?search=refund" \
    "/api/v1/inbox/all?phone=9197000001" \
    "/api/v1/inbox/all?phone=4470" \
    "/api/v1/inbox/all?phone=919700000123" \
    "/api/v1/inbox/all?limit=50" \
    "/api/v1/inbox?limit=50"; do
    get "$path&endDate=2099-12-31" >/dev/null
    first=$(curl -s -w '\n%{time_total}' -H "X-API-Key: $KEY" "$BASE$path")
    total=$(head -n1 <<<"$first" |
        python3 -c 'import json, sys; print(json.load(sys.stdin)["pagination"]["total"])')
    first_ms=$(tail -n1 <<<"$first" | awk '{printf "%.1f", $1 * 1000}')
    one=$(get "$path" | awk '{print int($1 * 1000)}')
    n=$((1500 / (one + 1) + 4))
    if [ $n -gt 300 ]; then n=300; fi
    times=()
    t0=$(ticks)
    for _ in $(seq 1 $n); do times+=("$(get "$path")"); done
    t1=$(ticks)
    median=$(printf '%s\n' "${times[@]}" | sort -n | awk '{a[NR] = $1} END {printf "%.1f", a[int((NR + 1) / 2)] * 1000}')
    cpu=$(awk -v t="$((t1 - t0))" -v n="$n" 'BEGIN {printf "%.1f", t * 10 / n}')
    echo "| \`${path#/api/v1/}\` | $first_ms ms | $cpu ms ($n requests) | $median ms | $total |"
done

# Filters asked once each, so that none finds a total kept: what a stream
# of new searches costs. The bench's twenty pairs, and the ten prefixes
# 4470…4479 (each about a tenth of the chats); each warmed first with a
# far-future endDate, as above.
once() {
    local name=$1
    shift
    for path in "$@"; do get "$path&endDate=2099-12-31" >/dev/null; done
    local t0 t1
    t0=$(ticks)
    for path in "$@"; do get "$path" >/dev/null; done
    t1=$(ticks)
    cpu=$(awk -v t="$((t1 - t0))" -v n="$#" 'BEGIN {printf "%.1f", t * 10 / n}')
    echo "| $name | $cpu ms ($# requests) |"
}
pairs=()
for pair in "refund status" "order status" "delivery address" "payment invoice" \
    "please help" "thanks today" "cancel order" "tracking status" "invoice price" \
    "account help" "refund please" "address today" "price order" "help cancel" \
    "status payment" "today delivery" "order tracking" "thanks account" \
    "invoice refund" "please cancel"; do
    pairs+=("/api/v1/inbox/all?limit=50&search=${pair// /%20}")
done
prefixes=()
for d in 0 1 2 3 4 5 6 7 8 9; do prefixes+=("/api/v1/inbox/all?limit=50&phone=447$d"); done
echo
echo "| asked once each (nothing kept) | server CPU per request |"
echo "|---|---:|"
once "\`inbox/all?search=<the twenty pairs>\`" "${pairs[@]}"
once "\`inbox?search=<the twenty pairs>\` (unread)" "${pairs[@]/inbox\/all?/inbox?}"
once "\`inbox/all?phone=4470…4479\`" "${prefixes[@]}"
echo
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"

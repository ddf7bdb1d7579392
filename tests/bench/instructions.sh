#!/usr/bin/env bash
# Instructions per request, per `make bench` workload, of one server binary:
# a measure of a build's speed that does not depend on what else the machine
# runs (wall-clock throughput on a shared machine does).
#
#   tests/bench/instructions.sh SERVER [SERVER...]
#
# For each SERVER: a copy of the `make bench` corpus (made once with the
# bench program, kept in bench-data/icount-corpus) is served by SERVER under
# `valgrind --tool=callgrind` (simulator backend, the bench's settings);
# each workload is warmed up, then a fixed sequence of requests is sent one
# after another on one keep-alive connection (curl), the server's counters
# are dumped before and after (`callgrind_control -d`), and the total
# instructions of all the server's threads, divided by the requests, is
# printed. Ingest posts messages to the simulator with a webhook registered
# to a local receiver, and waits until every message is delivered.
# Background work (the audit writer, timers) is counted with the workload
# that caused it.
#
# Environment: REQUESTS (per workload, default 400), MESSAGES (corpus size,
# default 100000), BENCH (the bench program, default
# target/release/examples/bench), DATA (default bench-data).
set -euo pipefail

REQUESTS=${REQUESTS:-400}
MESSAGES=${MESSAGES:-100000}
BENCH=${BENCH:-target/release/examples/bench}
DATA=$(realpath -m "${DATA:-bench-data}")
KEY=bench-api-key-0123456789abcdef0123456789
[ $# -ge 1 ] || { echo "usage: $0 SERVER [SERVER...]" >&2; exit 2; }
for tool in valgrind callgrind_control curl sqlite3 python3; do
    command -v $tool >/dev/null || { echo "$tool is needed" >&2; exit 2; }
done

corpus=$DATA/icount-corpus
if [ ! -f "$corpus/whatsapp-api.db" ]; then
    # The bench program loads the corpus, runs a 1 s bench and keeps the dir.
    mkdir -p "$DATA/icount-load"
    "$BENCH" --messages "$MESSAGES" --duration 1 --keep --data "$DATA/icount-load" \
        --server "$(realpath "$1")" >/dev/null
    rm -rf "$corpus"
    mv "$DATA/icount-load/bench-$MESSAGES" "$corpus"
    rm -rf "$DATA/icount-load" "$corpus/server.log" "$corpus/ingest.lua"
    # Back to the corpus as loaded: no webhook, no messages from the ingest run.
    sqlite3 "$corpus/whatsapp-api.db" "PRAGMA wal_checkpoint(TRUNCATE);" >/dev/null
fi
db=$corpus/whatsapp-api.db
busy=$(sqlite3 "$db" "SELECT phone FROM messages GROUP BY phone ORDER BY count(*) DESC LIMIT 1")
search='l%C3%A9a%20lef%C3%A8vre'
workloads=(
    "inbox/all|/api/v1/inbox/all?limit=50"
    "inbox (unread)|/api/v1/inbox?limit=50"
    "search|/api/v1/inbox/all?limit=50&search=$search"
    "phone filter|/api/v1/inbox/all?limit=50&phone=${busy:1:10}"
    "conversation|/api/v1/conversations/$busy/messages?limit=50"
    "health|/api/v1/health"
)

receiver_py='
import http.server, sys
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.send_response(200); self.send_header("Content-Length", "0"); self.end_headers()
        with open(sys.argv[2], "a") as f: f.write("x")
    def log_message(self, *a): pass
http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
'

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

measure() {
    local server=$1 work pid port base rport receiver dumps last
    work=$(mktemp -d "$DATA/icount-XXXXXX")
    cp -a "$corpus/." "$work/"
    port=$(free_port)
    base=http://127.0.0.1:$port
    # No .env is read; binaries older than `--env-file` read none from the
    # fresh work dir anyway.
    local env_file=()
    "$server" --help 2>&1 | grep -q -- --env-file && env_file=(--env-file /dev/null)
    (cd "$work" && DATA_DIR=$work HOST=127.0.0.1 PORT=$port WHATSAPP_BACKEND=simulator \
        RATE_LIMIT_PER_MINUTE=0 API_KEY=$KEY DASHBOARD_PASSWORD=bench-dashboard-password \
        LOG_LEVEL=info exec valgrind --tool=callgrind --callgrind-out-file="$work/cg.%p" \
        "$server" serve "${env_file[@]}" >"$work/server.log" 2>&1) &
    pid=$!
    # valgrind names its control pipes after $HOST, which the server's
    # environment sets: callgrind_control needs the same to find them.
    control() { HOST=127.0.0.1 callgrind_control "$@" >/dev/null 2>&1 || true; }
    trap "kill -TERM $pid 2>/dev/null || true" EXIT
    local up=
    for _ in $(seq 1200); do
        curl -fs "$base/api/v1/health" >/dev/null 2>&1 && { up=1; break; }
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if [ -z "$up" ]; then
        echo "$server did not start under valgrind; its log:" >&2
        tail -20 "$work/server.log" >&2
        kill -TERM "$pid" 2>/dev/null || true
        exit 1
    fi
    # valgrind runs the server as the same pid (exec).
    # A dump writes cg.<pid>.<n> with the instructions since the previous
    # dump and starts the count again. valgrind takes the request when one of
    # the server's threads next runs, not always before callgrind_control
    # returns: wait for the file.
    dumps=0
    dump() { # sets $last, the file written (complete: it ends with totals)
        dumps=$((dumps + 1))
        last=$work/cg.$pid.$dumps
        control -d "$pid"
        for _ in $(seq 1200); do
            grep -qs '^totals:' "$last" && return
            sleep 0.05
        done
        echo "callgrind did not dump $last" >&2
        exit 1
    }
    counted() { # the instructions in the last dump
        awk '/^(summary|totals):/ {print $2; exit}' "$last"
    }
    printf '%s' "$(basename "$server")"
    for w in "${workloads[@]}"; do
        local name=${w%%|*} path=${w#*|} cfg=$work/urls
        : >"$cfg"
        for _ in $(seq "$REQUESTS"); do printf 'url = "%s"\noutput = "/dev/null"\n' "$base$path" >>"$cfg"; done
        curl -fs -H "X-API-Key: $KEY" -K <(head -80 "$cfg") >/dev/null # warm-up
        sleep 1
        dump
        curl -fs -H "X-API-Key: $KEY" -K "$cfg" >/dev/null
        sleep 1 # the audit writer's batch
        dump
        printf ' | %s %d' "$name" $(($(counted) / REQUESTS))
    done
    # Ingest and webhook delivery.
    rport=$(free_port)
    receiver=$work/delivered
    : >"$receiver"
    python3 -c "$receiver_py" "$rport" "$receiver" &
    local rpid=$!
    trap "kill -TERM $pid $rpid 2>/dev/null || true" EXIT
    curl -fs -H "X-API-Key: $KEY" -H 'Content-Type: application/json' \
        -d "{\"url\":\"http://127.0.0.1:$rport/hook\",\"events\":[\"message.received\"]}" \
        "$base/api/v1/webhooks" >/dev/null
    post_cfg() { # $1 first, $2 count
        local i
        for i in $(seq "$1" $(($1 + $2 - 1))); do
            [ "$i" = "$1" ] || echo next
            printf 'url = "%s"\nheader = "X-API-Key: %s"\nheader = "Content-Type: application/json"\ndata = "{\\"from\\":\\"1555%07d@s.whatsapp.net\\",\\"push_name\\":\\"Bench %d\\",\\"text\\":\\"Bench message %d: where is my order?\\"}"\noutput = "/dev/null"\n' \
                "$base/api/v1/simulator/messages" "$KEY" $((1000000 + i % 3000)) "$i" "$i"
        done
    }
    wait_delivered() {
        for _ in $(seq 1200); do
            [ "$(stat -c %s "$receiver")" -ge "$1" ] && return
            sleep 0.1
        done
        echo "webhooks not delivered" >&2
        exit 1
    }
    curl -fs -K <(post_cfg 0 40) >/dev/null
    wait_delivered 40
    sleep 1
    dump
    curl -fs -K <(post_cfg 40 "$REQUESTS") >/dev/null
    wait_delivered $((40 + REQUESTS))
    sleep 1
    dump
    printf ' | ingest+webhook %d\n' $(($(counted) / REQUESTS))
    kill "$rpid"
    kill -TERM "$pid"
    wait "$pid" 2>/dev/null || true
    wait "$rpid" 2>/dev/null || true
    trap - EXIT
    rm -rf "$work"
}

for server in "$@"; do
    measure "$(realpath "$server")"
done

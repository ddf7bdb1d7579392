#!/usr/bin/env bash
# The hostile-client attacks of RELIABILITY.md by hand, through nginx in front
# of the server (the server block README.md gives, on local ports without
# TLS): the debug binary with the simulator backend, 4 workers,
# HTTP_TIMEOUT_SECS=5 and 256 open files, and nginx as Debian ships it
# (installed with apt-get when missing). Prints what each attack got from
# nginx; fails when /api/v1/health stops answering within a second, through
# nginx or directly, or when a control character reaches the server's log.
#
#   tests/proxy/nginx.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
command -v nginx >/dev/null || { apt-get update -qq && apt-get install -y -qq nginx >/dev/null; }
cargo build --quiet --bin whatsapp-api

DIR=$(mktemp -d)
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
SERVER_PORT=$(free_port)
PROXY_PORT=$(free_port)
mkdir -p "$DIR/data" "$DIR/tmp"
cat >"$DIR/nginx.conf" <<CONF
worker_processes 1;
pid $DIR/nginx.pid;
error_log $DIR/nginx-error.log info;
events { worker_connections 1024; }
http {
    access_log off;
    client_body_temp_path $DIR/tmp/body;
    proxy_temp_path $DIR/tmp/proxy;
    fastcgi_temp_path $DIR/tmp/fastcgi;
    uwsgi_temp_path $DIR/tmp/uwsgi;
    scgi_temp_path $DIR/tmp/scgi;
    server {
        listen 127.0.0.1:$PROXY_PORT;
        location / {
            proxy_pass http://127.0.0.1:$SERVER_PORT;
            proxy_set_header Host \$host;
        }
    }
}
CONF
(
    ulimit -n 256
    exec env WHATSAPP_BACKEND=simulator DATA_DIR="$DIR/data" PORT="$SERVER_PORT" \
        API_KEY=proxy-check-key-0123456789abcdef DASHBOARD_PASSWORD=proxy-check-password \
        RATE_LIMIT_PER_MINUTE=0 HTTP_WORKERS=4 HTTP_TIMEOUT_SECS=5 \
        ./target/debug/whatsapp-api --env-file /dev/null
) >"$DIR/server.log" 2>&1 &
SERVER=$!
trap 'kill $SERVER 2>/dev/null; wait $SERVER 2>/dev/null; [ -f "$DIR/nginx.pid" ] && kill "$(cat "$DIR/nginx.pid")"; rm -rf "$DIR"' EXIT
nginx -c "$DIR/nginx.conf"
for _ in $(seq 100); do curl -fs "http://127.0.0.1:$PROXY_PORT/api/v1/health" >/dev/null && break; sleep 0.1; done

python3 tests/proxy/attacks.py "$PROXY_PORT" "$SERVER_PORT"
kill -0 $SERVER || { echo "FAILED: the server exited" >&2; exit 1; }
if grep -qP '[\x00-\x08\x0b-\x1f\x7f]' "$DIR/server.log"; then
    echo "FAILED: a control character reached the server's log" >&2
    exit 1
fi
echo "nginx $(nginx -v 2>&1 | sed 's/.*\///'): the server is alive and its log holds no control character"

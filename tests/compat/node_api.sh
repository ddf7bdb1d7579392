#!/usr/bin/env bash
# The Node server's v1 API as its clients call it, with curl, against the real
# binary (simulator backend): health, status, inbox with every filter, reply,
# status, batch status, webhooks list. Every answer's shape and status is
# checked; the script fails at the first difference.
set -euo pipefail
cd "$(dirname "$0")/../.."
command -v curl >/dev/null || { apt-get update -qq && apt-get install -y -qq curl >/dev/null; }
cargo build --quiet

DIR=$(mktemp -d)
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
API_KEY=compat-key-0123456789abcdef
BASE="http://127.0.0.1:$PORT"
WHATSAPP_BACKEND=simulator DATA_DIR="$DIR" PORT="$PORT" API_KEY="$API_KEY" DASHBOARD_PASSWORD=compat-password \
    LOG_LEVEL=trace ./target/debug/whatsapp-api --env-file /dev/null >"$DIR/server.log" 2>&1 &
SERVER=$!
trap 'kill $SERVER 2>/dev/null; wait $SERVER 2>/dev/null; rm -rf "$DIR"' EXIT
for _ in $(seq 100); do curl -fs "$BASE/api/v1/health" | grep -q '"connected"' && break; sleep 0.1; done

# check <json> <python expression over j>
check() { python3 -c "import json,sys; j=json.loads(sys.argv[1]); assert $2, sys.argv[1]" "$1" || { echo "FAILED: $2" >&2; exit 1; }; }
H="X-API-Key: $API_KEY"

check "$(curl -s "$BASE/api/v1/health")" 'j == {"status": "connected"}'
check "$(curl -s -H "$H" "$BASE/api/v1/status")" 'j["connected"] is True and j["qrReady"] is False and j["sessionExists"] is True'
check "$(curl -s "$BASE/api/v1/status")" 'j == {"error": "Unauthorized"}'

for text in "Hello, is my order shipped?" "Need an invoice please" "hello again"; do
    curl -s -H "$H" -H 'Content-Type: application/json' "$BASE/api/v1/simulator/messages" \
        -d "{\"from\":\"15551234567@s.whatsapp.net\",\"text\":\"$text\"}" >/dev/null
done
curl -s -H "$H" -H 'Content-Type: application/json' "$BASE/api/v1/simulator/messages" \
    -d '{"from":"447700900123@s.whatsapp.net","text":"Bonjour"}' >/dev/null

INBOX=$(curl -s -H "$H" "$BASE/api/v1/inbox")
check "$INBOX" 'j["count"] == 4 and j["pagination"] == {"page": 1, "limit": 50, "total": 4, "totalPages": 1}'
check "$INBOX" 'set(j["messages"][0]) >= {"id", "direction", "phone", "message", "reply_status", "media_type", "media_url", "created_at"}'
check "$INBOX" 'j["messages"][0]["message"] == "Bonjour" and len(j["messages"][0]["created_at"]) == 19'
check "$(curl -s -H "$H" "$BASE/api/v1/inbox/unread?page=2&limit=2")" 'j["count"] == 2 and j["pagination"]["totalPages"] == 2'
check "$(curl -s -H "$H" "$BASE/api/v1/inbox/all?search=HELLO")" 'j["pagination"]["total"] == 2'
check "$(curl -s -H "$H" "$BASE/api/v1/inbox/all?phone=44770")" 'j["pagination"]["total"] == 1'
TODAY=$(date -u +%F)
check "$(curl -s -H "$H" "$BASE/api/v1/inbox/all?startDate=$TODAY&endDate=$TODAY")" 'j["pagination"]["total"] == 4'
check "$(curl -s -H "$H" "$BASE/api/v1/inbox/all?endDate=2001-01-01")" 'j["pagination"]["total"] == 0'
check "$(curl -s -H "$H" "$BASE/api/v1/inbox/bogus")" 'j == {"error": "Invalid status"}'
check "$(curl -s -H "$H" "$BASE/api/v1/inbox?limit=1000")" 'j["pagination"]["limit"] == 100'

ID=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["messages"][1]["id"])' "$INBOX")
check "$(curl -s -H "$H" -H 'Content-Type: application/json' -X POST "$BASE/api/v1/messages/$ID/reply" -d '{}')" 'j == {"error": "Missing message"}'
check "$(curl -s -H "$H" -H 'Content-Type: application/json' -X POST "$BASE/api/v1/messages/nope/reply" -d '{"message":"x"}')" 'j == {"error": "Message not found"}'
REPLY=$(curl -s -H "$H" -H 'Content-Type: application/json' -X POST "$BASE/api/v1/messages/$ID/reply" -d '{"message":"Yes, it shipped today."}')
check "$REPLY" 'j["success"] is True and isinstance(j["replyId"], str)'
check "$(curl -s -H "$H" "$BASE/api/v1/inbox/replied")" 'j["pagination"]["total"] == 1'

ID2=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["messages"][2]["id"])' "$INBOX")
check "$(curl -s -H "$H" -H 'Content-Type: application/json' -X PATCH "$BASE/api/v1/messages/$ID2/status" -d '{"status":"read"}')" 'j == {"success": True}'
check "$(curl -s -H "$H" -H 'Content-Type: application/json' -X PATCH "$BASE/api/v1/messages/$ID2/status" -d '{"status":"done"}')" 'j == {"error": "Invalid status"}'
check "$(curl -s -H "$H" -H 'Content-Type: application/json' -X PATCH "$BASE/api/v1/messages/nope/status" -d '{"status":"read"}')" 'j == {"error": "Not found"}'
IDS=$(python3 -c 'import json,sys; print(json.dumps([m["id"] for m in json.loads(sys.argv[1])["messages"]]))' "$INBOX")
check "$(curl -s -H "$H" -H 'Content-Type: application/json' -X PATCH "$BASE/api/v1/messages/batch/status" -d "{\"ids\":$IDS,\"status\":\"ignored\"}")" 'j == {"success": True, "updated": 4}'
check "$(curl -s -H "$H" -H 'Content-Type: application/json' -X PATCH "$BASE/api/v1/messages/batch/status" -d '{"ids":[],"status":"read"}')" 'j == {"error": "Missing or invalid ids array"}'

curl -s -H "$H" -H 'Content-Type: application/json' -X POST "$BASE/api/v1/webhooks" \
    -d '{"url":"http://127.0.0.1:9/hook","events":"message.received,message.sent","secret":"shh-secret"}' >/dev/null
WEBHOOKS=$(curl -s -H "$H" "$BASE/api/v1/webhooks")
check "$WEBHOOKS" 'j["webhooks"][0]["events"] == "message.received,message.sent" and j["webhooks"][0]["active"] == 1'
check "$WEBHOOKS" '"secret" not in j["webhooks"][0] and j["webhooks"][0]["has_secret"] is True'

HEADERS=$(curl -s -D - -o /dev/null -H "$H" "$BASE/api/v1/inbox")
echo "$HEADERS" | grep -qi '^x-ratelimit-limit: 100' || { echo "FAILED: rate limit headers" >&2; exit 1; }
# At trace level, no secret may appear in any log line.
for secret in "$API_KEY" compat-password shh-secret; do
    if grep -qF "$secret" "$DIR/server.log"; then echo "FAILED: a log line holds a secret" >&2; exit 1; fi
done
grep -q "GET /api/v1/inbox" "$DIR/server.log" || { echo "FAILED: the log was not captured" >&2; exit 1; }
echo "Node v1 API compatibility: all checks passed"

#!/usr/bin/env bash
# The container image as it ships: `make image` (the static musl binary on an
# image FROM scratch, nothing pulled), then run with podman and the simulator.
# Checks: the image is under 25 MB, holds the binary, /data and /tmp and
# nothing else, and declares a numeric non-root user and group, HOST, the
# /data volume and the healthcheck; a first container prints its generated API
# key in its log, turns healthy (its HEALTHCHECK too), runs as that user,
# stores an injected message on the volume and exits 0 on SIGTERM; a second
# container on the same volume, with a read-only root filesystem, still has
# the message and the key. Then contrib/compose.yaml (its host ports moved to
# free ones) brings up its two numbers with podman-compose: both healthy, each
# with its own data. Installs podman, runc and podman-compose with apt-get
# when missing (idempotent).
#
# Some sandboxes refuse podman's default runtime (crun: "cgroups in hybrid mode
# not supported") or its default rlimits. There the test falls back, and says
# so, to runc with cgroupfs and explicit rlimits (4096 open files, as the
# systemd unit sets, and 4096 processes); the port is published on 127.0.0.1
# either way, which also proves the server listens on the container's
# network, not its loopback.
#
#   tests/deploy/container.sh          (from `make test-container`)
set -euo pipefail
cd "$(dirname "$0")/../.."

MAX_IMAGE_BYTES=25000000
IMAGE=localhost/whatsapp-api:latest
say() { echo "container test: $*"; }
fail() {
    echo "container test: FAILED: $*" >&2
    exit 1
}

missing=()
command -v podman >/dev/null 2>&1 || missing+=(podman)
command -v runc >/dev/null 2>&1 || missing+=(runc)
command -v podman-compose >/dev/null 2>&1 || missing+=(podman-compose)
command -v curl >/dev/null 2>&1 || missing+=(curl)
if ((${#missing[@]})); then
    say "installing ${missing[*]} with apt-get"
    sudo=""
    [ "$(id -u)" = 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# The image `make image` ships, built the way it ships it.
started=$SECONDS
make --no-print-directory image ENGINE=podman IMAGE="$IMAGE"
say "make image took $((SECONDS - started)) s"

# inspect <python expression over c, the image's inspect record>
inspect() {
    podman image inspect "$IMAGE" |
        python3 -c "import json,sys; c=json.load(sys.stdin)[0]; print($1)"
}
size=$(inspect 'c["Size"]')
say "image size $size bytes ($(inspect 'round(c["Size"] / 1e6, 1)') MB)"
((size < MAX_IMAGE_BYTES)) || fail "the image is $size bytes, over $MAX_IMAGE_BYTES"
user=$(inspect 'c["Config"]["User"]')
[[ $user =~ ^[1-9][0-9]*:[1-9][0-9]*$ ]] || fail "the image's user is '$user', not a numeric non-root uid"
uid=${user%%:*}
gid=${user#*:}
[ "$(inspect '"HOST=0.0.0.0" in c["Config"]["Env"]')" = True ] || fail "HOST=0.0.0.0 is not set"
[ "$(inspect '"/data" in c["Config"].get("Volumes", {})')" = True ] || fail "/data is not a volume"
[ "$(inspect 'c["Healthcheck"]["Test"]')" = "['CMD', '/usr/local/bin/whatsapp-api', 'healthcheck']" ] ||
    fail "the HEALTHCHECK is $(inspect 'c.get("Healthcheck")')"

# The image's whole filesystem: the binary (not writable by the runtime user),
# /data for that user, /tmp, and nothing else (no CA bundle: the roots are
# compiled in; nothing from the source tree).
files() {
    local id
    id=$("${ENGINE[@]}" create "$IMAGE")
    "${ENGINE[@]}" export "$id" | tar -tv | awk '{print $1, $2, $NF}'
    "${ENGINE[@]}" rm --volumes "$id" >/dev/null
}
expected="drwx------ $uid/$gid data/
drwxrwxrwt 0/0 tmp/
drwxr-xr-x 0/0 usr/
drwxr-xr-x 0/0 usr/local/
drwxr-xr-x 0/0 usr/local/bin/
-rwxr-xr-x 0/0 usr/local/bin/whatsapp-api"

# The runtime: podman's defaults, or the documented fallback.
ENGINE=(podman)
RUN=()
if ! err=$(podman run --rm "$IMAGE" --version 2>&1 >/dev/null); then
    say "podman's default runtime is refused here: ${err##*$'\n'}"
    # --log-level=fatal: without systemd, podman logs an error for every
    # healthcheck timer it cannot create (the test runs the check itself);
    # a failing command still prints its "Error:" line.
    ENGINE=(podman --runtime runc --cgroup-manager=cgroupfs --log-level=fatal)
    RUN+=(--ulimit nofile=4096 --ulimit nproc=4096)
    say "falling back to: ${ENGINE[*]} run ${RUN[*]}"
    "${ENGINE[@]}" run --rm "${RUN[@]}" "$IMAGE" --version >/dev/null ||
        fail "the fallback runtime does not start the image either"
fi

actual=$(files)
[ "$actual" = "$expected" ] || fail "the image holds:
$actual
instead of:
$expected"

NAME="whatsapp-api-test-$$"
VOLUME="$NAME-data"
DIR=$(mktemp -d)
COMPOSE=(podman-compose -p "$NAME" -f "$DIR/compose.yaml")
if ((${#ENGINE[@]} > 1)); then
    COMPOSE=(podman-compose --podman-args "${ENGINE[*]:1}" --podman-run-args "${RUN[*]}" -p "$NAME" -f "$DIR/compose.yaml")
fi
cleanup() {
    "${ENGINE[@]}" rm --force --ignore --volumes --time 0 "$NAME-1" "$NAME-2" >/dev/null 2>&1 || true
    "${ENGINE[@]}" volume rm --force "$VOLUME" >/dev/null 2>&1 || true
    if [ -f "$DIR/compose.yaml" ]; then
        "${COMPOSE[@]}" down --volumes >/dev/null 2>&1 || true
        "${ENGINE[@]}" network rm --force "${NAME}_default" >/dev/null 2>&1 || true
    fi
    rm -rf "$DIR"
}
trap cleanup EXIT
free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
PORT=$(free_port)
BASE="http://127.0.0.1:$PORT"
"${ENGINE[@]}" volume create "$VOLUME" >/dev/null

# await_health <container> <base url>: waits (at most 30 s) for its health route.
await_health() {
    local deadline=$((SECONDS + 30))
    until curl -fsS -o /dev/null "$2/api/v1/health" 2>/dev/null; do
        if [ "$("${ENGINE[@]}" inspect --format '{{.State.Running}}' "$1")" != true ] || ((SECONDS > deadline)); then
            "${ENGINE[@]}" logs "$1" >&2 || true
            fail "$1 never answered on $2"
        fi
        sleep 0.1
    done
}

# start <name> [podman run options]: runs the image with the simulator on the
# volume, published on $PORT, and waits for it.
start() {
    local name=$1
    shift
    "${ENGINE[@]}" run --detach --name "$name" "${RUN[@]}" --publish "127.0.0.1:$PORT:3001" \
        --volume "$VOLUME:/data" --env WHATSAPP_BACKEND=simulator "$@" "$IMAGE" >/dev/null
    await_health "$name" "$BASE"
}

# generated_key <container>: the API key its first start printed, once, in
# its log (on the first non-empty line after the notice).
generated_key() {
    "${ENGINE[@]}" logs "$1" 2>&1 | python3 -c '
import sys
lines = sys.stdin.read().splitlines()
at = next(i for i, l in enumerate(lines) if "Generated API key" in l)
print(next(l.strip() for l in lines[at + 1:] if l.strip()))'
}

# check <json> <python expression over j>
check() {
    python3 -c "import json,sys; j=json.loads(sys.argv[1]); assert $2, sys.argv[1]" "$1" ||
        fail "$2"
}

# Effective and real user and group of the container's main process.
process_ids() {
    "${ENGINE[@]}" top "$1" user ruser group rgroup | tail -n +2 | xargs
}

# ---- first container: a fresh volume ----
start "$NAME-1"
H="X-API-Key: $(generated_key "$NAME-1")"
check "$(curl -s -H "$H" "$BASE/api/v1/status")" 'j["backend"] == "simulator"'
"${ENGINE[@]}" healthcheck run "$NAME-1" || fail "the image's HEALTHCHECK does not pass"
ids=$(process_ids "$NAME-1")
[ "$ids" = "$uid $uid $gid $gid" ] || fail "the server runs as '$ids', not $uid:$gid"
# The static binary's allocator keeps transparent huge pages off for the
# process (src/main.rs), or its memory would be resident 2 MiB at a time.
pid=$("${ENGINE[@]}" inspect --format '{{.State.Pid}}' "$NAME-1")
if grep -q '^THP_enabled:' "/proc/$pid/status"; then
    grep -q '^THP_enabled:[[:space:]]*0$' "/proc/$pid/status" ||
        fail "transparent huge pages are on for the server: $(grep THP_enabled "/proc/$pid/status")"
fi
check "$(curl -s -H "$H" -H 'Content-Type: application/json' "$BASE/api/v1/simulator/messages" \
    -d '{"from":"15551234567@s.whatsapp.net","text":"Still here after a restart?","id":"container-test-1"}')" \
    'j["wa_id"] == "container-test-1"'
# SIGTERM (podman stop's signal, the image's STOPSIGNAL): a clean exit 0.
"${ENGINE[@]}" stop --time 15 "$NAME-1" >/dev/null
code=$("${ENGINE[@]}" inspect --format '{{.State.ExitCode}}' "$NAME-1")
[ "$code" = 0 ] || fail "the server exited $code on SIGTERM"
"${ENGINE[@]}" rm "$NAME-1" >/dev/null

# ---- second container: the same volume, a read-only root filesystem ----
start "$NAME-2" --read-only
ids=$(process_ids "$NAME-2")
[ "$ids" = "$uid $uid $gid $gid" ] || fail "the second server runs as '$ids'"
check "$(curl -s -H "$H" "$BASE/api/v1/inbox/all")" \
    'j["pagination"]["total"] == 1 and j["messages"][0]["message"] == "Still here after a restart?"'
if "${ENGINE[@]}" logs "$NAME-2" 2>&1 | grep -q 'Generated'; then
    fail "the second start generated new secrets"
fi
# The commands README gives for a container, in an image without a shell.
"${ENGINE[@]}" exec "$NAME-2" whatsapp-api backup /data/backup.db >/dev/null ||
    fail "whatsapp-api backup does not run in the container"
"${ENGINE[@]}" stop --time 15 "$NAME-2" >/dev/null
code=$("${ENGINE[@]}" inspect --format '{{.State.ExitCode}}' "$NAME-2")
[ "$code" = 0 ] || fail "the second server exited $code on SIGTERM"

# ---- compose: two numbers side by side ----
ports=("$(free_port)" "$(free_port)")
sed -e "s/127.0.0.1:3001:3001/127.0.0.1:${ports[0]}:3001/" -e "s/127.0.0.1:3002:3001/127.0.0.1:${ports[1]}:3001/" \
    contrib/compose.yaml >"$DIR/compose.yaml"
grep -q "127.0.0.1:${ports[1]}:3001" "$DIR/compose.yaml" || fail "compose.yaml no longer publishes 3001 and 3002"
# The sandbox, so the numbers need no phone.
sed -i 's/^\(    environment:\)$/\1\n      WHATSAPP_BACKEND: simulator/' "$DIR/compose.yaml"
"${COMPOSE[@]}" up -d >"$DIR/compose.log" 2>&1 || {
    cat "$DIR/compose.log" >&2
    fail "podman-compose up"
}
service_container() {
    "${ENGINE[@]}" ps --quiet --filter "label=com.docker.compose.project=$NAME" \
        --filter "label=com.docker.compose.service=$1"
}
sales=$(service_container sales)
support=$(service_container support)
[ -n "$sales" ] && [ -n "$support" ] || fail "compose started: $("${ENGINE[@]}" ps --format '{{.Names}}')"
await_health "$sales" "http://127.0.0.1:${ports[0]}"
await_health "$support" "http://127.0.0.1:${ports[1]}"
for c in "$sales" "$support"; do
    "${ENGINE[@]}" healthcheck run "$c" || fail "compose: $c is not healthy"
done
SALES="X-API-Key: $(generated_key "$sales")"
SUPPORT="X-API-Key: $(generated_key "$support")"
[ "$SALES" != "$SUPPORT" ] || fail "both numbers generated the same key"
check "$(curl -s -H "$SALES" -H 'Content-Type: application/json' "http://127.0.0.1:${ports[0]}/api/v1/simulator/messages" \
    -d '{"from":"15551234567@s.whatsapp.net","text":"For sales only"}')" '"wa_id" in j'
check "$(curl -s -H "$SALES" "http://127.0.0.1:${ports[0]}/api/v1/status")" 'j["backend"] == "simulator"'
check "$(curl -s -H "$SALES" "http://127.0.0.1:${ports[0]}/api/v1/inbox/all")" 'j["pagination"]["total"] == 1'
check "$(curl -s -H "$SUPPORT" "http://127.0.0.1:${ports[1]}/api/v1/inbox/all")" 'j["pagination"]["total"] == 0'
check "$(curl -s -H "$SALES" "http://127.0.0.1:${ports[1]}/api/v1/inbox/all")" 'j == {"error": "Unauthorized"}'
"${COMPOSE[@]}" down --volumes >>"$DIR/compose.log" 2>&1 || fail "podman-compose down"

say "passed ($((SECONDS - started)) s; image $size bytes, uid $uid)"

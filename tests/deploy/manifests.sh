#!/usr/bin/env bash
# The deployment files that no test here can run for real.
#
# Kubernetes (contrib/kubernetes/): every resource checked with
# kubernetes-validate --strict (from PyPI, its schemas bundled, so offline;
# unknown fields are errors), together with a second number made by the sed
# line the manifest documents; then what a schema cannot see
# (check_manifests.py): selectors, probes, the image's user, port and data
# directory, one replica, distinct names. Installs kubernetes-validate into
# target/tools/ on first use.
#
# systemd (contrib/whatsapp-api.service and the whatsapp-api@.service
# template): `systemd-analyze verify` (from Debian's systemd, installed when
# missing) must print nothing: it only warns about an unknown setting or a bad
# value, so any output fails the test.
#
#   tests/deploy/manifests.sh          (from `make test-manifests`)
set -euo pipefail
cd "$(dirname "$0")/../.."

VENV=target/tools/kubernetes-validate
# A tool that no longer runs (the checkout moved: a venv's scripts name
# their Python by absolute path) is installed again.
if ! "$VENV/bin/kubernetes-validate" --help >/dev/null 2>&1; then
    rm -rf "$VENV"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet 'kubernetes-validate>=1.37,<2'
fi
if ! command -v systemd-analyze >/dev/null 2>&1; then
    echo "manifests: installing systemd with apt-get"
    sudo=""
    [ "$(id -u)" = 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends systemd >/dev/null
fi

DIR=$(mktemp -d)
trap 'rm -rf "$DIR"' EXIT

# ---- Kubernetes ----
mkdir "$DIR/kubernetes"
sed 's/sales/support/g' contrib/kubernetes/whatsapp-api-sales.yaml >"$DIR/kubernetes/whatsapp-api-support.yaml"
"$VENV/bin/kubernetes-validate" --strict contrib/kubernetes/*.yaml "$DIR"/kubernetes/*.yaml
"$VENV/bin/python" tests/deploy/check_manifests.py Containerfile contrib/kubernetes/*.yaml "$DIR"/kubernetes/*.yaml

# ---- systemd ----
# verify wants ExecStart's binary to exist: point it at one that does.
mkdir "$DIR/systemd"
for unit in whatsapp-api.service whatsapp-api@.service; do
    sed "s#/usr/local/bin/whatsapp-api#$(command -v true)#" "contrib/$unit" >"$DIR/systemd/$unit"
done
ln -s whatsapp-api@.service "$DIR/systemd/whatsapp-api@sales.service"
for unit in whatsapp-api.service whatsapp-api@sales.service; do
    out=$(systemd-analyze verify "$DIR/systemd/$unit" 2>&1) || true
    if [ -n "$out" ]; then
        echo "manifests: FAILED: systemd-analyze verify $unit:" >&2
        echo "$out" >&2
        exit 1
    fi
    echo "manifests: systemd-analyze verify $unit: no warnings"
done

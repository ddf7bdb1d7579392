#!/usr/bin/env bash
# The dashboard's browser test: headless Chromium, driven over WebDriver by
# chromedriver, against the real server binary with the simulator backend.
# Installs Debian's chromium and chromium-driver when they are missing
# (idempotent); the driver itself is Python's standard library, so nothing
# else is downloaded. Usage: tests/browser/run.sh   (from `make test-browser`)
set -euo pipefail
cd "$(dirname "$0")/../.."

missing=()
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v chromedriver >/dev/null 2>&1 || missing+=(chromium-driver)
if ((${#missing[@]})); then
    echo "browser test: installing ${missing[*]} with apt-get"
    sudo=""
    [ "$(id -u)" = 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi
command -v python3 >/dev/null 2>&1 || {
    echo "browser test: python3 is needed" >&2
    exit 1
}

"${CARGO:-cargo}" build --quiet --bin whatsapp-api
exec python3 tests/browser/dashboard_test.py target/debug/whatsapp-api

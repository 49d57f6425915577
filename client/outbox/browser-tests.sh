#!/usr/bin/env bash
# Runs the outbox's wasm-bindgen tests in headless Chromium, against the stub
# relay (examples/stub_relay.rs). Fails if a test fails, if no test ran, or if
# a tool is missing: it never skips.
#
# Environment: CARGO_TARGET_DIR (default /var/tmp/votemesh-target),
# VOTEMESH_TOOLS (where wasm-bindgen-test-runner is installed, default
# /var/tmp/votemesh-ci/tools), CHROMEDRIVER (default /usr/bin/chromedriver),
# STUB_PORT (default 47391).
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/votemesh-target}"
tools="${VOTEMESH_TOOLS:-/var/tmp/votemesh-ci/tools}"
runner="$tools/bin/wasm-bindgen-test-runner"
export CHROMEDRIVER="${CHROMEDRIVER:-/usr/bin/chromedriver}"
port="${STUB_PORT:-47391}"

for tool in "$runner" "$CHROMEDRIVER"; do
    if [ ! -x "$tool" ]; then
        echo "browser-tests: $tool is missing" >&2
        exit 1
    fi
done
if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
    rustup target add wasm32-unknown-unknown
fi

cd "$root"
cargo build --locked -p votemesh-outbox --example stub_relay
"$CARGO_TARGET_DIR/debug/examples/stub_relay" "127.0.0.1:$port" &
stub_pid=$!
trap 'kill "$stub_pid" 2>/dev/null || true' EXIT
for _ in $(seq 50); do
    curl -fsS "http://127.0.0.1:$port/health" >/dev/null 2>&1 && break
    sleep 0.1
done
curl -fsS "http://127.0.0.1:$port/health" >/dev/null

# wasm-bindgen-test-runner reads webdriver.json from the working directory.
cd "$here"
log="$(mktemp)"
set +e
VOTEMESH_STUB_RELAY="http://127.0.0.1:$port" \
    CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER="$runner" \
    cargo test --locked -p votemesh-outbox --target wasm32-unknown-unknown 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e

if [ "$status" -ne 0 ]; then
    echo "browser-tests: FAILED (exit $status)" >&2
    exit "$status"
fi
# The browser suite must have run, and run everything: the first result line
# after tests/browser.rs started must count passes and no ignored test.
result="$(awk '/Running tests\/browser\.rs/ {on = 1} on && /test result:/ {print; exit}' "$log")"
if ! grep -Eq 'test result: ok\. [1-9][0-9]* passed; 0 failed; 0 ignored' <<<"$result"; then
    echo "browser-tests: the browser suite did not run in full: ${result:-no result}" >&2
    exit 1
fi
echo "browser-tests: ok"

#!/usr/bin/env bash
# The browser tests, in Debian's headless Chromium (and the page renderer's
# own unit tests, which need the same build):
#   1. the outbox's wasm-bindgen tests (IndexedDB, signing, receipts) in the browser;
#   2. the voter scenarios (voter.test.mjs) against a real node and edge relay
#      on 127.0.0.1, with the pages and service worker from client/build.sh.
# Needs /usr/bin/chromium and /usr/bin/chromedriver (Debian's `chromium` and
# `chromium-driver`), Node.js with npm, and the wasm32 target; .ci/run installs them.
set -euo pipefail
cd "$(dirname "$0")/../.."
root="$PWD"
target="${CARGO_TARGET_DIR:-$root/target}"
export CARGO_TARGET_DIR="$target"

for tool in /usr/bin/chromium /usr/bin/chromedriver; do
    if [[ ! -x "$tool" ]]; then
        echo "error: $tool is missing: apt-get install chromium chromium-driver" >&2
        exit 1
    fi
done

echo "== node and relay binaries"
cargo build --locked -p votemesh-node -p votemesh-relay

echo "== browser build (client/build.sh)"
bash client/build.sh

# In the renderer's own profile: its dependencies are built once, for both.
echo "== page renderer unit tests (--cfg engine)"
RUSTFLAGS="--cfg=engine" CARGO_TARGET_DIR="$target/client-engine" \
    cargo test --locked --profile engine --manifest-path client/app/Cargo.toml

echo "== outbox tests in Chromium (wasm-bindgen-test)"
bash client/outbox/browser-tests.sh

echo "== voter scenarios in Chromium"
if [[ ! -d tests/browser/node_modules/playwright-core ]]; then
    (cd tests/browser && npm ci --no-audit --no-fund --silent)
fi
VOTEMESH_BIN_DIR="$target/debug" VOTEMESH_WEB_BUILD="$target/web" \
    node --test --test-concurrency=1 --test-timeout=300000 tests/browser/

#!/usr/bin/env bash
# The poll page's weight and speed beside minimal SvelteKit and Next.js pages (see
# README.md here): builds the release node and relay and the browser app,
# serves the real poll page from a relay on 127.0.0.1, and prints one table.
# Arguments go to run.mjs (e.g. --runs 3, --profile rtt400-3g).
set -euo pipefail
cd "$(dirname "$0")/../.."
target="${CARGO_TARGET_DIR:-$PWD/target}"
export CARGO_TARGET_DIR="$target"
cargo build --locked --release -p votemesh-node -p votemesh-relay
bash client/build.sh
if [[ ! -d tests/browser/node_modules/playwright-core ]]; then
    (cd tests/browser && npm ci --no-audit --no-fund --silent)
fi
VOTEMESH_BIN_DIR="$target/release" VOTEMESH_WEB_BUILD="$target/web" \
    node client/bench/page-weight.mjs "$@"

#!/usr/bin/env bash
# Every test: the Rust workspace (unit, property and multi-process tests on
# 127.0.0.1), the simulator with its comparison baselines, then the browser
# tests in headless Chromium (tests/browser/run.sh).
set -euo pipefail
cd "$(dirname "$0")"
cargo test --locked --workspace
# The simulator again with its automerge and yrs strategies (an optional feature).
cargo test --locked -p votemesh-sim --features baselines
bash tests/browser/run.sh

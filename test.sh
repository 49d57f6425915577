#!/usr/bin/env bash
# Every test: the Rust workspace (unit, property and multi-process tests on
# 127.0.0.1), then the browser tests in headless Chromium (tests/browser/run.sh).
set -euo pipefail
cd "$(dirname "$0")"
cargo test --locked --workspace
bash tests/browser/run.sh

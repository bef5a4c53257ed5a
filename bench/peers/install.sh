#!/usr/bin/env bash
# Makes the benchmark's peer, Cloudflare's official TypeScript SDK (npm
# package `cloudflare`, pinned in bench/peers/package.json and
# package-lock.json), available in build/peers/node_modules for
# bench/peers/sdk_bench.mjs. Installs Debian's nodejs and npm first when the
# machine has no node or no npm (apt-get, as root or through sudo, the way
# .ci/deps does). Quiet and quick when everything is already there: npm ci
# runs only when build/peers has no SDK yet or the lock file changed, and
# then prints only npm's own short summary.
#
# The pin: cloudflare 7.3.0, the newest release. Its package.json has no
# `engines` field; its README names Node 20 or later, but the one thing in
# its code that Node 18 lacks is the global `File`, used only to build file
# uploads, which the bench never makes. The bench's calls (create, get,
# edit, delete, list) were run with Debian 12's own nodejs 18.20.4 and
# work, so the newest release is kept for Debian 12's Node 18 too.
#
#   bash bench/peers/install.sh
set -euo pipefail
cd "$(dirname "$0")/../.."

src=bench/peers
dest=build/peers

if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  sudo=""
  if [ "$(id -u)" != 0 ]; then
    command -v sudo >/dev/null || { echo "need root (or sudo) to install: nodejs npm" >&2; exit 1; }
    sudo=sudo
  fi
  # apt-get's own notes (debconf's "delaying package configuration, since
  # apt-utils is not installed" on a bare Debian) are shown only on failure.
  log=$(mktemp)
  if ! { $sudo apt-get update -qq &&
         $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nodejs npm
       } >"$log" 2>&1; then
    cat "$log" >&2
    rm -f "$log"
    echo "bench/peers/install.sh: could not install Debian's nodejs and npm" >&2
    exit 1
  fi
  rm -f "$log"
  hash -r
fi

# The copy of the lock file that the last successful npm ci installed from
# (npm ci itself never rewrites package-lock.json, but a failed run must not
# look like a finished one).
stamp=$dest/.installed-package-lock.json
if [ -e "$dest/node_modules/cloudflare/package.json" ] && cmp -s "$src/package-lock.json" "$stamp"; then
  exit 0
fi

mkdir -p "$dest"
rm -f "$stamp"
cp "$src/package.json" "$src/package-lock.json" "$dest/"
(cd "$dest" && npm ci --no-audit --no-fund)
cp "$src/package-lock.json" "$stamp"

#!/usr/bin/env bash
# Installs Stoplight Prism, pinned, into .ci/node (ignored by git) when it is
# not there yet, and prints the path of its binary. The conformance spec
# serves Cloudflare's OpenAPI file with it.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
version=5.16.0
prefix="$root/.ci/node"
bin="$prefix/node_modules/.bin/prism"

installed=$(node -e "process.stdout.write(require('$prefix/node_modules/@stoplight/prism-cli/package.json').version)" 2>/dev/null || true)
if [ ! -x "$bin" ] || [ "$installed" != "$version" ]; then
  command -v npm >/dev/null || { echo "npm is missing: install Debian's nodejs and npm" >&2; exit 1; }
  mkdir -p "$prefix"
  npm install --prefix "$prefix" --no-audit --no-fund --no-save --loglevel=error \
    "@stoplight/prism-cli@$version" >&2
fi
echo "$bin"

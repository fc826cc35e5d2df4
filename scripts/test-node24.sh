#!/usr/bin/env bash
# Runs the unit and integration tests again under Node.js 24 LTS, the runtime of the image.
# Node 24 comes from the npm registry's `node` package (the official binary as a registry package),
# installed once into the cache; the first run downloads about 60 MB.
set -euo pipefail
cd "$(dirname "$0")/.."

version=$(node -p "require('./package.json').config.node24")
dir=${XDG_CACHE_HOME:-$HOME/.cache}/db-refresher/node-$version
if [ ! -x "$dir/node_modules/node/bin/node" ]; then
  echo "test:node24: installing Node.js $version into $dir" >&2
  npm install --prefix "$dir" --no-save --no-audit --no-fund --loglevel=error "node@$version" >&2
fi
export PATH="$dir/node_modules/node/bin:$PATH"
echo "test:node24: $(node --version)" >&2
exec node node_modules/vitest/vitest.mjs run --project unit --project integration "$@"

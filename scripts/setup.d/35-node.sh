# shellcheck shell=bash
# Node.js dependencies of clients/node (the npm package twilioguard): `npm ci`
# from its package-lock.json (TypeScript, ESLint, Express, Fastify, twilio-node,
# protoc-gen-es, connect), with install scripts off.
#
# Sourced by scripts/test.sh. The packages are installed once per lockfile hash
# and Node version under $TG_CACHE/node-deps/, and clients/node/node_modules is a
# link to them; a real clients/node/node_modules directory (a developer's own
# npm install) is used as it is. Exports:
#
#   TWILIOGUARD_TEST_NODE  the node binary (Node 20 or later)
#
# Without CI=true a failure only warns (the Node check then skips); with
# CI=true it fails the run.

_tg_node_setup() {
  local pkg="$ROOT/clients/node"
  if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    echo "node: node/npm not found (install Node.js 20 or later, e.g. apt-get install nodejs npm)" >&2
    return 1
  fi
  local major
  major=$(node -p 'process.versions.node.split(".")[0]')
  if [ "$major" -lt 20 ]; then
    echo "node: Node.js $(node --version) is too old; clients/node needs 20 or later" >&2
    return 1
  fi
  if [ -d "$pkg/node_modules" ] && [ ! -L "$pkg/node_modules" ]; then
    echo "node: using clients/node/node_modules as it is (a local install; remove it to use the cached one)"
  else
    local key dir
    key="$(node --version)-$(sha256sum <"$pkg/package-lock.json" | cut -c1-16)"
    dir="$TG_CACHE/node-deps/$key"
    # Installs for other lockfiles that no run used for a week.
    find "$TG_CACHE/node-deps" -mindepth 1 -maxdepth 1 -type d ! -name "$key" -mtime +7 -exec rm -rf {} + 2>/dev/null
    if [ ! -f "$dir/.installed" ]; then
      echo "node: npm ci for clients/node into $dir"
      rm -rf "$dir" && mkdir -p "$dir" &&
        cp "$pkg/package.json" "$pkg/package-lock.json" "$dir/" &&
        (cd "$dir" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error) &&
        touch "$dir/.installed" || return 1
    fi
    touch "$dir"
    ln -sfn "$dir/node_modules" "$pkg/node_modules" || return 1
  fi
  export TWILIOGUARD_TEST_NODE
  TWILIOGUARD_TEST_NODE=$(command -v node)
  echo "node: $(node --version), npm $(npm --version), clients/node dependencies ready"
}

if ! _tg_node_setup; then
  unset TWILIOGUARD_TEST_NODE
  if [ "${CI:-}" = true ]; then
    echo "node: setup failed" >&2
    unset -f _tg_node_setup
    return 1
  fi
  echo "node: not available; the clients/node checks will skip" \
    "(install Node.js 20+ and run: cd clients/node && npm ci)" >&2
fi
unset -f _tg_node_setup

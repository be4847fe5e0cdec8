#!/usr/bin/env bash
# The Node package (clients/node): strict type check, ESLint, generated code
# drift, the build to dist/, and the tests with Node's test runner (unit
# tests, and end-to-end tests of real Express and Fastify apps against the
# real twilioguard binary with requests signed by twilio-node).
#
# Needs the dependencies scripts/setup.d/35-node.sh installs. Without them:
# under CI=true this fails; otherwise it skips with a message.
set -euo pipefail
cd "${ROOT:-$(dirname "$0")/../..}"
ROOT=$PWD

if [ -z "${TWILIOGUARD_TEST_NODE:-}" ] || [ ! -e clients/node/node_modules/.bin/tsc ]; then
  if [ "${CI:-}" = true ]; then
    echo "node: Node.js or the clients/node dependencies are missing (scripts/setup.d/35-node.sh failed?)" >&2
    exit 1
  fi
  echo "node: SKIP clients/node checks: run scripts/test.sh, or install Node.js 20+ and run 'npm ci' in clients/node" >&2
  exit 0
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
go tool -modfile=tools/go.mod buf generate --template clients/node/buf.gen.yaml -o "$tmp"
if ! diff -r clients/node/src/gen "$tmp/clients/node/src/gen" >"$tmp/diff"; then
  head -n 40 "$tmp/diff"
  echo "node: generated code under clients/node/src/gen is out of date: run" \
    "'go tool -modfile=tools/go.mod buf generate --template clients/node/buf.gen.yaml' and commit" >&2
  exit 1
fi
echo "node: generated code is up to date"

cd clients/node
rm -rf build dist
npx tsc --noEmit
npx eslint .
npx tsc -p tsconfig.build.json
npx tsc -p tsconfig.test.json
node --test build/test/*.test.js

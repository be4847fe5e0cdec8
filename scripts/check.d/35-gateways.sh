#!/usr/bin/env bash
# Validates the shipped gateway configurations with the real gateways the
# setup scripts installed: deploy/envoy-http (envoy --mode validate),
# deploy/caddy (caddy adapt --validate) and deploy/nginx (nginx -t, with the
# test certificate in place of the example's paths). The end-to-end tests
# that run them in front of twilioguard are in the Go suite (packages proxy
# and forwardauth).
set -euo pipefail
cd "${ROOT:-$(dirname "$0")/../..}"

missing() {
  if [ "${CI:-}" = true ]; then
    echo "gateways: $1 is not set (its scripts/setup.d script failed?)" >&2
    exit 1
  fi
  echo "gateways: SKIP $2: $1 is not set (run scripts/test.sh, or install it)"
}

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

if [ -n "${TWILIOGUARD_TEST_ENVOY:-}" ]; then
  "$TWILIOGUARD_TEST_ENVOY" --mode validate --log-level warn -c deploy/envoy-http/envoy.yaml | tail -n 1
else
  missing TWILIOGUARD_TEST_ENVOY deploy/envoy-http/envoy.yaml
fi

if [ -n "${TWILIOGUARD_TEST_CADDY:-}" ]; then
  XDG_DATA_HOME="$tmp" XDG_CONFIG_HOME="$tmp" HOME="$tmp" \
    "$TWILIOGUARD_TEST_CADDY" adapt --validate --config deploy/caddy/Caddyfile >/dev/null 2>"$tmp/caddy.log" ||
    { cat "$tmp/caddy.log" >&2; echo "gateways: deploy/caddy/Caddyfile is not valid" >&2; exit 1; }
  echo "deploy/caddy/Caddyfile OK"
else
  missing TWILIOGUARD_TEST_CADDY deploy/caddy/Caddyfile
fi

if [ -n "${TWILIOGUARD_TEST_NGINX:-}" ] && [ -n "${TWILIOGUARD_TEST_NGINX_CERT:-}" ]; then
  sed -e "s|/etc/ssl/certs/hooks.example.com.pem|$TWILIOGUARD_TEST_NGINX_CERT|" \
      -e "s|/etc/ssl/private/hooks.example.com.key|$TWILIOGUARD_TEST_NGINX_KEY|" \
      deploy/nginx/twilioguard-proxy.conf >"$tmp/site.conf"
  cat >"$tmp/nginx.conf" <<EOF
pid $tmp/nginx.pid;
error_log $tmp/error.log;
events {}
http {
  access_log off;
  client_body_temp_path $tmp/body;
  proxy_temp_path $tmp/proxy;
  fastcgi_temp_path $tmp/fastcgi;
  uwsgi_temp_path $tmp/uwsgi;
  scgi_temp_path $tmp/scgi;
  include $tmp/site.conf;
}
EOF
  "$TWILIOGUARD_TEST_NGINX" -t -q -p "$tmp" -c "$tmp/nginx.conf" -e "$tmp/error.log" ||
    { echo "gateways: deploy/nginx/twilioguard-proxy.conf is not valid" >&2; exit 1; }
  echo "deploy/nginx/twilioguard-proxy.conf OK"
else
  missing TWILIOGUARD_TEST_NGINX deploy/nginx/twilioguard-proxy.conf
fi

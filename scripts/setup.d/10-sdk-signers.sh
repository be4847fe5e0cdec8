# shellcheck shell=bash
# Installs the real Twilio SDK signers that produce the signature conformance
# vectors (signature/testdata/gen): twilio-node from npm and twilio-python from
# PyPI, pinned, into $TG_CACHE. Exports TWILIOGUARD_SDK_NODE_DIR (a directory
# with node_modules/twilio) and TWILIOGUARD_SDK_PYTHON (an interpreter that
# imports twilio). Sourced by scripts/test.sh; idempotent and fast on re-run.
# With CI=true a failed install is fatal; otherwise the vector check skips.

TWILIO_NODE_VERSION=6.3.1
TWILIO_PYTHON_VERSION=9.13.0

_tg_sdk_signers() {
  local node_dir="$TG_CACHE/sdk-node-$TWILIO_NODE_VERSION"
  local py_dir="$TG_CACHE/sdk-python-$TWILIO_PYTHON_VERSION"
  local pkg="$node_dir/node_modules/twilio/package.json"

  if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    echo "sdk-signers: node/npm not found (install Node.js, e.g. apt-get install nodejs npm)" >&2
    return 1
  fi
  if [ ! -f "$pkg" ] || [ "$(node -p "require('$pkg').version")" != "$TWILIO_NODE_VERSION" ]; then
    echo "sdk-signers: installing twilio@$TWILIO_NODE_VERSION from npm"
    mkdir -p "$node_dir" &&
      printf '{"private": true}\n' >"$node_dir/package.json" &&
      (cd "$node_dir" && npm install --no-audit --no-fund --silent "twilio@$TWILIO_NODE_VERSION") || return 1
  fi
  export TWILIOGUARD_SDK_NODE_DIR="$node_dir"

  local check="import importlib.metadata as m, sys; sys.exit(m.version('twilio') != '$TWILIO_PYTHON_VERSION')"
  if ! "$py_dir/bin/python" -c "$check" 2>/dev/null; then
    echo "sdk-signers: installing twilio==$TWILIO_PYTHON_VERSION from PyPI"
    rm -rf "$py_dir"
    python3 -m venv "$py_dir" &&
      "$py_dir/bin/pip" install --quiet --disable-pip-version-check "twilio==$TWILIO_PYTHON_VERSION" &&
      "$py_dir/bin/python" -c "$check" || return 1
  fi
  export TWILIOGUARD_SDK_PYTHON="$py_dir/bin/python"
  echo "sdk-signers: twilio-node $TWILIO_NODE_VERSION, twilio-python $TWILIO_PYTHON_VERSION"
}

if ! _tg_sdk_signers; then
  unset TWILIOGUARD_SDK_NODE_DIR TWILIOGUARD_SDK_PYTHON
  if [ "${CI:-}" = true ]; then
    echo "sdk-signers: installation failed (fatal with CI=true)" >&2
    return 1
  fi
  echo "sdk-signers: not installed; the vector regeneration check will be skipped" >&2
fi
unset -f _tg_sdk_signers

# shellcheck shell=bash
# Python for the clients/python tests: a virtualenv with the pinned test
# dependencies (Django, Flask, FastAPI, aiohttp, gunicorn, uvicorn, twilio, pytest from
# PyPI; clients/python/requirements-test.txt).
#
# Sourced by scripts/test.sh. Creates $TG_CACHE/venv-py with the machine's
# python3, skips the install when the venv already holds exactly that
# requirements file, and exports:
#
#   TWILIOGUARD_TEST_PYTHON  the venv's python (runs pytest; the package under
#                            test is taken from the working tree)
#
# When TWILIOGUARD_TEST_PYTHON is already set, that interpreter is used.
# Without CI=true a failure only warns (the Python check then runs what it
# can); with CI=true it fails the run.

_tg_python_setup() {
  if [ -n "${TWILIOGUARD_TEST_PYTHON:-}" ]; then
    echo "python: using TWILIOGUARD_TEST_PYTHON=$TWILIOGUARD_TEST_PYTHON from the environment"
    return 0
  fi
  local venv="$TG_CACHE/venv-py"
  local req="$ROOT/clients/python/requirements-test.txt"
  command -v python3 >/dev/null || { echo "python: python3 not found" >&2; return 1; }
  local want
  want="$(python3 -c 'import sys; print(sys.version.split()[0])') $(sha256sum <"$req" | cut -d' ' -f1)"
  if [ ! -x "$venv/bin/python" ] || [ "$(cat "$venv/.twilioguard-requirements" 2>/dev/null)" != "$want" ]; then
    echo "python: installing clients/python/requirements-test.txt from PyPI into $venv"
    rm -rf "$venv"
    python3 -m venv "$venv" || return 1
    "$venv/bin/pip" install -q --disable-pip-version-check -r "$req" || return 1
    echo "$want" >"$venv/.twilioguard-requirements"
  fi
  "$venv/bin/python" -c 'import django, flask, fastapi, aiohttp, httpx2, uvicorn, gunicorn, python_multipart, twilio, pytest' || return 1
  export TWILIOGUARD_TEST_PYTHON="$venv/bin/python"
  echo "python: $("$venv/bin/python" --version), $("$venv/bin/python" -c 'import aiohttp, django, fastapi, twilio; from importlib.metadata import version as v; print("Django", django.get_version(), "Flask", v("flask"), "FastAPI", fastapi.__version__, "aiohttp", aiohttp.__version__, "twilio", twilio.__version__)') at $venv"
}

if ! _tg_python_setup; then
  if [ "${CI:-}" = true ]; then
    echo "python: setup failed" >&2
    unset -f _tg_python_setup
    return 1
  fi
  echo "python: test dependencies not available; the Python tests that need them will skip" \
    "(install with: python3 -m venv v && v/bin/pip install -r clients/python/requirements-test.txt," \
    "then export TWILIOGUARD_TEST_PYTHON=\$PWD/v/bin/python)" >&2
fi
unset -f _tg_python_setup

#!/usr/bin/env bash
# The Python client's tests (clients/python): unit tests, and end-to-end tests
# against a real twilioguard server and real Django (runserver), Flask
# (gunicorn) and FastAPI (uvicorn) apps; mypy --strict over the package.
#
# Runs pytest with $TWILIOGUARD_TEST_PYTHON (set by setup.d/30-python.sh).
# Without it: under CI=true this fails; otherwise the machine's python3 runs
# what it can and the tests that need a framework or twilio skip with a message.
# pytest's "no tests ran" (exit 5) is a failure.
set -euo pipefail
cd "${ROOT:-$(dirname "$0")/../..}"

py="${TWILIOGUARD_TEST_PYTHON:-}"
if [ -z "$py" ]; then
  if [ "${CI:-}" = true ]; then
    echo "python: TWILIOGUARD_TEST_PYTHON is not set (scripts/setup.d/30-python.sh did not run or failed)" >&2
    exit 1
  fi
  py=python3
  if ! "$py" -c 'import pytest' 2>/dev/null; then
    echo "python: SKIP clients/python tests: no pytest; run scripts/test.sh or" \
      "python3 -m venv v && v/bin/pip install -r clients/python/requirements-test.txt" >&2
    exit 0
  fi
  echo "python: TWILIOGUARD_TEST_PYTHON not set; using $py (tests needing a framework or twilio will skip)"
fi

rc=0
PYTHONDONTWRITEBYTECODE=1 "$py" -m pytest clients/python -q -ra -p no:cacheprovider || rc=$?
if [ "$rc" -eq 5 ]; then
  echo "python: pytest collected no tests" >&2
  exit 1
fi
exit "$rc"

# shellcheck shell=bash
# Builds the twilioguard binary from this checkout once for every end-to-end
# test (Go, Python, Node) and exports:
#
#   TWILIOGUARD_TEST_BIN  path of the binary
#
# Sourced by scripts/test.sh. The binary lives in a temporary directory that
# is removed at the end of the run.

_tg_bin_dir=$(mktemp -d)
CLEANUP+=("rm -rf '$_tg_bin_dir'")
if go build -o "$_tg_bin_dir/twilioguard" ./cmd/twilioguard; then
  export TWILIOGUARD_TEST_BIN="$_tg_bin_dir/twilioguard"
  echo "binary: $TWILIOGUARD_TEST_BIN"
else
  echo "binary: go build ./cmd/twilioguard failed" >&2
  unset _tg_bin_dir
  return 1
fi
unset _tg_bin_dir

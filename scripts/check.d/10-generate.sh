#!/usr/bin/env bash
# Generated code and module files must match their sources: buf format, buf
# lint, regeneration and go mod tidy may change nothing.
set -euo pipefail
cd "$ROOT"
buf() { go tool -modfile=tools/go.mod buf "$@"; }
buf format -d --exit-code
buf lint
if git rev-parse -q --verify refs/heads/main >/dev/null && git cat-file -e main:buf.yaml 2>/dev/null; then
  buf breaking --against '.git#branch=main'
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cp -r gen "$tmp/gen.before"
buf generate
if ! diff -r "$tmp/gen.before" gen >/dev/null; then
  diff -r "$tmp/gen.before" gen | head -40
  echo "generated code under gen/ is out of date: run 'go tool -modfile=tools/go.mod buf generate' and commit" >&2
  exit 1
fi
go mod tidy -diff
(cd tools && go mod tidy -diff)
echo "generated code and go.mod are up to date"

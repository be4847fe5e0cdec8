#!/usr/bin/env bash
# The Go suite: vet, then every test with the race detector, then a static
# (CGO_ENABLED=0) build of everything.
set -euo pipefail
cd "$ROOT"
go vet ./...
go tool -modfile=tools/go.mod staticcheck ./...
go test -race -shuffle=on -timeout 20m ./...
CGO_ENABLED=0 go build -trimpath -o /dev/null ./cmd/twilioguard
echo "go checks passed"

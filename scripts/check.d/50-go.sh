#!/usr/bin/env bash
# The Go suite: vet, then every test with the race detector, then a static
# (CGO_ENABLED=0) build of everything.
set -euo pipefail
cd "$ROOT"
go vet ./...
go tool -modfile=tools/go.mod golangci-lint run ./...   # .golangci.yml: staticcheck, sloglint, forbidigo, errorlint, ...
go test -race -shuffle=on -timeout 20m ./...
# Scale figures (one million cached accounts) are measured without the race
# detector, which would slow them tenfold.
go test -count=1 -run 'Scale' -v ./store/postgres | grep -E '^(=== RUN|--- |\s+\S+_test.go:|ok|FAIL|PASS)'
CGO_ENABLED=0 go build -trimpath -o /dev/null ./cmd/twilioguard
echo "go checks passed"

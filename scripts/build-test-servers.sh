#!/usr/bin/env bash
# Build the transparency-log and time-stamping servers the anchoring tests run against, from pinned Go module
# versions, into .cache/go-servers/ (gitignored; nothing built is committed). Reused when present: a cached
# build costs one `go version` and two file checks. Without Go it prints why and exits 0 (the tests then skip
# with that reason).
#   rekor-server      github.com/sigstore/rekor-tiles/v2 (Rekor v2, POSIX/Tessera backend)
#   timestamp-server  github.com/sigstore/timestamp-authority/v2 (RFC 3161 TSA)
set -euo pipefail
cd "$(dirname "$0")/.."
REKOR_VERSION=v2.3.0
TSA_VERSION=v2.1.3
OUT=.cache/go-servers
if ! command -v go >/dev/null 2>&1; then
  echo "warning: Go is not installed; Rekor v2 and Sigstore TSA tests will be skipped"; exit 0
fi
mkdir -p "$OUT/bin"
stamp="$(go env GOVERSION) rekor-tiles@$REKOR_VERSION timestamp-authority@$TSA_VERSION"
if [ -x "$OUT/rekor-server" ] && [ -x "$OUT/timestamp-server" ] && [ "$(cat "$OUT/VERSIONS" 2>/dev/null)" = "$stamp" ]; then
  exit 0
fi
echo "building Rekor v2 $REKOR_VERSION and timestamp-authority $TSA_VERSION with $(go env GOVERSION) (cold: minutes)"
start=$(date +%s)
# go install writes the binary under its package's last path element: posix/ -> "posix"
GOBIN="$PWD/$OUT/bin" GOFLAGS=-buildvcs=false go install \
  "github.com/sigstore/rekor-tiles/v2/cmd/rekor-server/posix@$REKOR_VERSION"
GOBIN="$PWD/$OUT/bin" GOFLAGS=-buildvcs=false go install \
  "github.com/sigstore/timestamp-authority/v2/cmd/timestamp-server@$TSA_VERSION"
mv -f "$OUT/bin/posix" "$OUT/rekor-server"
mv -f "$OUT/bin/timestamp-server" "$OUT/timestamp-server"
echo "$stamp" > "$OUT/VERSIONS"
echo "built in $(( $(date +%s) - start )) s: $OUT/rekor-server $OUT/timestamp-server"

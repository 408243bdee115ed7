#!/usr/bin/env bash
# schemathesis (PyPI) against a live router: the served OpenAPI document, every operation but
# the two infinite streams, with its default checks, as each of the three roles. Bounded (-n)
# to keep CI short; the seed is printed so a failure replays. Needs the debug binary
# (cargo test builds it).
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${SCHEMATHESIS_VENV:-$HOME/.cache/nftr-schemathesis}
if [ ! -x "$VENV/bin/schemathesis" ]; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q 'schemathesis==4.32.5'
fi

BIN=target/debug/nft-event-router
WORK=$(mktemp -d)
NFT_ROUTER__HTTP__BIND=127.0.0.1:0 NFT_ROUTER__STORE__URL="$WORK/st.db" \
  NFT_ROUTER__CLUSTER__DRAIN_SECS=0 RUST_LOG=warn "$BIN" > "$WORK/banner" 2> "$WORK/router.log" &
ROUTER=$!
trap 'kill $ROUTER 2>/dev/null || true; rm -rf "$WORK"' EXIT
for _ in $(seq 1 100); do
  grep -q 'is up on' "$WORK/banner" 2>/dev/null && break
  sleep 0.1
done
BASE=$(grep -o 'http://127.0.0.1:[0-9]*' "$WORK/banner" | head -1)
[ -n "$BASE" ] || { cat "$WORK/router.log"; echo "the router did not start"; exit 1; }

for role in user service admin; do
  token=$("$BIN" token --user "schemathesis-$role" --role "$role")
  echo "-- as $role"
  "$VENV/bin/schemathesis" --config-file .ci/schemathesis.toml run "$BASE/api/v1/openapi.json" \
    -H "Authorization: Bearer $token" \
    --exclude-path-regex 'nft-events$|/admin/operations$' \
    --max-examples "${SCHEMATHESIS_EXAMPLES:-20}"
done
kill -0 $ROUTER || { echo "the router died"; cat "$WORK/router.log"; exit 1; }

#!/usr/bin/env bash
# Memory of idle streams over TLS, router and nginx + nchan in one run (issue: HTTP/2 over TLS):
# per idle HTTP/1.1 stream on its own TLS connection, and per extra stream on an open HTTP/2
# connection. Each server is started fresh (memory a previous run freed stays resident).
# Needs: apt-get install -y nginx-light libnginx-mod-nchan. Prints one JSON line per system.
#   H1=2000 H2_CONNECTIONS=20 H2_STREAMS=100 bash bench/tls.sh
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
H1=${H1:-2000} H2_CONNECTIONS=${H2_CONNECTIONS:-20} H2_STREAMS=${H2_STREAMS:-100}
ROUTER_PORT=${ROUTER_PORT:-18444} NCHAN_PORT=${NCHAN_PORT:-18443}
WORK=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; pkill -f "nginx -p $WORK" 2>/dev/null || true' EXIT

(cd "$ROOT" && cargo build --release -q && cargo build --release -q -p loadgen --bin tls-idle)
ROUTER=$ROOT/target/release/nft-event-router
IDLE=$ROOT/target/release/tls-idle
"$ROUTER" dev-cert --out "$WORK" > /dev/null
secret=$(sed -n 's/^jwt_secret = "\(.*\)"/\1/p' "$ROOT/config.toml")

wait_tls() {
  for _ in $(seq 1 100); do
    curl -s -o /dev/null --cacert "$WORK/cert.pem" "$1" && return 0
    sleep 0.1
  done
  echo "no answer from $1" >&2; exit 1
}

measure() { # measure NAME URL PATH PIDS [SECRET]
  local args=(--url "$2" --path "$3" --ca "$WORK/cert.pem" --pid "$4"
    --h1 "$H1" --h2-connections "$H2_CONNECTIONS" --h2-streams "$H2_STREAMS")
  [ -n "${5:-}" ] && args+=(--token-secret "$5")
  printf '{"system":"%s","figures":%s}\n' "$1" "$("$IDLE" "${args[@]}")"
}

# The router: TLS on its own listener, limits that would count the load generator off.
mkdir -p "$WORK/router" && cp "$ROOT/config.toml" "$WORK/router/"
(cd "$WORK/router" && NFT_ROUTER__HTTP__BIND=127.0.0.1:$ROUTER_PORT \
  NFT_ROUTER__HTTP__TLS__CERT=$WORK/cert.pem NFT_ROUTER__HTTP__TLS__KEY=$WORK/key.pem \
  NFT_ROUTER__SSE__MAX_CONNECTIONS_PER_USER=1000 NFT_ROUTER__LIMITS__CONNECTS_PER_USER_PER_SEC=0 \
  NFT_ROUTER__LIMITS__CONNECTS_PER_ADDRESS_PER_SEC=0 NFT_ROUTER__LIMITS__MAX_STREAMS_PER_ADDRESS=0 \
  RUST_LOG=warn exec "$ROUTER" > router.log 2>&1) &
router=$!
wait_tls "https://localhost:$ROUTER_PORT/healthz"
measure router "https://localhost:$ROUTER_PORT" /api/v1/user/nft-events "$router" "$secret"
kill "$router"; wait "$router" 2>/dev/null || true

# nginx + nchan: bench/nchan/nginx.conf with TLS and HTTP/2 on its listener.
mkdir -p "$WORK/nchan/tmp"
sed "s|listen 127.0.0.1:18201 reuseport;|listen 127.0.0.1:$NCHAN_PORT ssl http2 reuseport;\n        ssl_certificate $WORK/cert.pem;\n        ssl_certificate_key $WORK/key.pem;|" \
  "$ROOT/bench/nchan/nginx.conf" > "$WORK/nchan/nginx.conf"
nginx -p "$WORK/nchan/" -c "$WORK/nchan/nginx.conf" > "$WORK/nchan/out.log" 2>&1 &
master=$!
wait_tls "https://localhost:$NCHAN_PORT/"
workers=$(pgrep -P "$master" | paste -sd, -)
measure nchan "https://localhost:$NCHAN_PORT" '/sub/{user}' "$master,$workers"
kill -QUIT "$master"; wait "$master" 2>/dev/null || true

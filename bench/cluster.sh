#!/usr/bin/env bash
# Cross-instance delivery: for 1, 2 and 3 router instances on one MariaDB, one private Redis
# and one shared `kafka-cluster`, the load generator holds its streams on the last instance and
# publishes through the first (with one instance, both are the same: local delivery), then,
# with several instances, through the last too (local delivery inside the same cluster). Reports publish → frame latency, the bus messages
# per event (the instances' own counters from /readyz) and Redis CPU per event (INFO cpu).
#
# Run by hand from anywhere, after `cargo build --release --features mysql`:
#   bench/cluster.sh                      # 1,000 events/s for 20 s per step
#   RATE=2000 SECS=10 bench/cluster.sh
#   COUNTS="3 1 3 1" WARMUP=10 bench/cluster.sh   # alternate, each step warmed up first
# Each step first runs the same load for WARMUP seconds (default 10) on other users and
# discards it: the first seconds after start pay for cold connection pools, caches and store
# pages, which is not what the cross-instance budget is about.
# Needs: redis-server and redis-cli, mariadb (or mysql) client, python3. Never run by tests or CI.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
ROUTER=$TARGET_DIR/release/nft-event-router
LOADGEN=$TARGET_DIR/release/loadgen
RATE=${RATE:-1000}; SECS=${SECS:-20}; WARMUP=${WARMUP:-10}
CONNS=${CONNS:-3000}; USERS=${USERS:-1000}
COUNTS=${COUNTS:-"1 2 3"}
REDIS_PORT=${REDIS_PORT:-16399}
DB_URL=${DB_URL:-mysql://root@127.0.0.1:3306}
WORK=$(mktemp -d /tmp/cluster-bench.XXXXXX)
PIDS=()

cleanup() {
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  sleep 1
  for pid in "${PIDS[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
}
trap cleanup EXIT

redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --save '' --appendonly no \
  > "$WORK/redis.log" 2>&1 &
REDIS_PID=$!
PIDS+=("$REDIS_PID")
until redis-cli -p "$REDIS_PORT" ping > /dev/null 2>&1; do sleep 0.1; done

echo "redis: $REDIS_PORT, work: $WORK" >&2

# A fresh Kafka cluster per step: the consumer groups of one step must not inherit the
# previous steps' records (their catching up would load the next step's instances).
start_kafka() {
  "$ROUTER" --config "$ROOT/config.toml" kafka-cluster --bind 127.0.0.1:0 > "$WORK/kafka-$1.log" 2>&1 &
  KAFKA_PID=$!
  PIDS+=("$KAFKA_PID")
  until grep -q 'kafka cluster ready' "$WORK/kafka-$1.log"; do sleep 0.2; done
  BOOTSTRAP=$(sed -nE 's/.*kafka cluster ready: bootstrap ([^ ]+).*/\1/p' "$WORK/kafka-$1.log" | head -1)
}

redis_cpu() { # seconds of CPU Redis has used
  redis-cli -p "$REDIS_PORT" info cpu | tr -d '\r' \
    | awk -F: '/^used_cpu_(user|sys):/ { s += $2 } END { printf "%.4f", s }'
}

bus_counters() { # "published received", summed over the instances' /readyz
  local sum_pub=0 sum_rcv=0 port body
  for port in "$@"; do
    body=$(curl -s "http://127.0.0.1:$port/readyz")
    read -r p r < <(python3 -c 'import json,sys; b=json.load(sys.stdin)["checks"]["bus"]; print(b["published"], b["received"])' <<< "$body")
    sum_pub=$((sum_pub + p)); sum_rcv=$((sum_rcv + r))
  done
  echo "$sum_pub $sum_rcv"
}

echo "| instances | streams on | published on | events | publish → frame p50 | p90 | p99 | p99.9 | missing | bus messages published / event | bus messages received / event | Redis CPU µs / event |"
echo "|---|---|---|---|---|---|---|---|---|---|---|---|"
step=0
for n in $COUNTS; do
  db="bench_cluster_${step}_$$"
  mysql -h 127.0.0.1 -u root -e "DROP DATABASE IF EXISTS $db; CREATE DATABASE $db"
  redis-cli -p "$REDIS_PORT" flushall > /dev/null
  start_kafka "$step"
  ports=()
  step_pids=()
  for i in $(seq 1 "$n"); do
    port=$((18300 + i))
    ports+=("$port")
    NFT_ROUTER__HTTP__BIND=127.0.0.1:$port \
    NFT_ROUTER__STORE__URL="$DB_URL/$db" \
    NFT_ROUTER__REDIS__URL=redis://127.0.0.1:$REDIS_PORT \
    NFT_ROUTER__KAFKA__BROKERS="$BOOTSTRAP" \
    NFT_ROUTER__CLUSTER__BUS=redis \
    NFT_ROUTER__CLUSTER__INSTANCE_ID=bench-$i \
    NFT_ROUTER__CLUSTER__DRAIN_SECS=0 \
    NFT_ROUTER__LIMITS__PUBLISH_PER_SEC=0 NFT_ROUTER__LIMITS__CONNECTS_PER_ADDRESS_PER_SEC=0 \
    NFT_ROUTER__LIMITS__CONNECTS_PER_USER_PER_SEC=0 NFT_ROUTER__LIMITS__MAX_STREAMS_PER_ADDRESS=0 \
    RUST_LOG=warn \
      "$ROUTER" --config "$ROOT/config.toml" > "$WORK/node-$n-$i.log" 2>&1 &
    step_pids+=("$!")
    PIDS+=("$!")
  done
  for port in "${ports[@]}"; do
    until curl -sf "http://127.0.0.1:$port/readyz" > /dev/null; do sleep 0.2; done
  done
  first=${ports[0]}; last=${ports[$((n - 1))]}
  step=$((step + 1))
  if [ "$WARMUP" -gt 0 ]; then
    "$LOADGEN" --url "http://127.0.0.1:$last" --publish-url "http://127.0.0.1:$first" \
      --connections "$CONNS" --users "$USERS" --max-per-user 3 --rate "$RATE" \
      --duration "$WARMUP" --drain 2 --publishers 64 --quiet --json --user-prefix "w$step-" \
      > "$WORK/warmup-$step.json"
  fi
  # Cross-instance (published on the first, streams on the last), then, with several
  # instances, local in the same cluster under the same load (published on the streams' own
  # instance): the difference between the two rows is what the bus adds.
  publish_ports=("$first")
  if [ "$n" -gt 1 ]; then publish_ports+=("$last"); fi
  for pub in "${publish_ports[@]}"; do
    run="$step-$pub"
    read -r pub0 rcv0 < <(bus_counters "${ports[@]}")
    cpu0=$(redis_cpu)
    "$LOADGEN" --url "http://127.0.0.1:$last" --publish-url "http://127.0.0.1:$pub" \
      --connections "$CONNS" --users "$USERS" --max-per-user 3 --rate "$RATE" \
      --duration "$SECS" --drain 5 --publishers 64 --quiet --json --user-prefix "c$run-" \
      > "$WORK/loadgen-$run.json"
    cpu1=$(redis_cpu)
    read -r pub1 rcv1 < <(bus_counters "${ports[@]}")
    python3 - "$WORK/loadgen-$run.json" "$n" "$pub" "$last" "$pub0" "$pub1" "$rcv0" "$rcv1" "$cpu0" "$cpu1" <<'PY'
import json, sys
report = json.load(open(sys.argv[1]))
n, first, last = sys.argv[2], sys.argv[3], sys.argv[4]
pub0, pub1, rcv0, rcv1 = map(int, sys.argv[5:9])
cpu0, cpu1 = map(float, sys.argv[9:11])
events = report["publish"]["accepted"]
lat = report["latency_us"] or {}
ms = lambda us: f"{us / 1000:.2f} ms"
per = lambda x: f"{x / events:.2f}" if events else "-"
print(f"| {n} | :{last} | :{first} | {events:,} | {ms(lat.get('p50', 0))} | {ms(lat.get('p90', 0))} "
      f"| {ms(lat.get('p99', 0))} | {ms(lat.get('p999', 0))} | {report['delivery']['missing']} "
      f"| {per(pub1 - pub0)} | {per(rcv1 - rcv0)} | {(cpu1 - cpu0) * 1e6 / events:.1f} |", flush=True)
PY
  done
  for pid in "${step_pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${step_pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  kill -TERM "$KAFKA_PID" 2>/dev/null || true
  wait "$KAFKA_PID" 2>/dev/null || true
  mysql -h 127.0.0.1 -u root -e "DROP DATABASE IF EXISTS $db"
done

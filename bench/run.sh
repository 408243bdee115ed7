#!/usr/bin/env bash
# Side-by-side benchmark: the same loadgen scenarios against nft-event-router,
# nginx + nchan and Pushpin on this machine; writes BENCHMARKS.md at the repository root.
#
# Run by hand, as root (it raises the file limit to 20,000), from anywhere:
#   bench/run.sh                 # all three systems, every scenario, ~20 minutes on the 2-core box
#   SYSTEMS="router nchan" bench/run.sh
#   SYSTEMS=router SCENARIOS=kafka bench/run.sh   # the Kafka path alone (router only)
#   SYSTEMS=router SCENARIOS=ladder RATES="200 500" RESULTS=/tmp/bench.X/results bench/run.sh
#     (more steps into an earlier run's results; BENCHMARKS.md is rewritten from all of them)
#   bench/run.sh --quick         # router and nchan, the headline rows at reduced sizes, < 5 minutes;
#     its report goes beside its results, BENCHMARKS.md is left alone
#   bench/run.sh --growth        # router and nchan, the cost model alone (how cost grows), ~12
#     minutes; its report goes beside its results, BENCHMARKS.md is left alone
# Every run keeps its results (one JSON per scenario and step, with the loadgen command beside
# it) under bench/results/<date>-<commit>[-quick]/ unless RESULTS says otherwise, so that two
# runs can be compared file by file.
# Needs: apt-get install -y nginx-light libnginx-mod-nchan pushpin (zurl comes with pushpin).
# Never run by tests or CI.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
QUICK=
if [ "${1:-}" = --quick ]; then
  QUICK=-quick
  # The headline rows only, smaller and shorter: the idle figure per connection, two steps of
  # the rate ladder, two of the broadcast ladder, and slow clients.
  : "${SYSTEMS:=router nchan}" "${SCENARIOS:=idle ladder slow broadcast}"
  : "${IDLE_CONNS:=5000}" "${IDLE_SECS:=10}" "${RATES:=1000 5000}" "${STEP_SECS:=8}"
  : "${BCAST_RATES:=250 500}" "${SLOW_SECS:=15}"
fi
if [ "${1:-}" = --growth ]; then
  QUICK=-growth
  # The cost model alone (memory by streams, frames by streams per user, cost by topics per
  # event), ~12 minutes; its report goes beside its results, BENCHMARKS.md is left alone.
  : "${SYSTEMS:=router nchan}" "${SCENARIOS:=memory peruser topics}"
fi
COMMIT=$(git -C "$ROOT" rev-parse --short HEAD)
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
LOADGEN=$TARGET_DIR/release/loadgen
ORIGIN=$TARGET_DIR/release/grip-origin
ROUTER=$TARGET_DIR/release/nft-event-router
SYSTEMS=${SYSTEMS:-"router nchan pushpin"}
SCENARIOS=${SCENARIOS:-"idle ladder slow kafka broadcast multi memory peruser topics"}
WORK=$(mktemp -d /tmp/bench.XXXXXX)
OUT=${RESULTS:-$ROOT/bench/results/$(date -u +%F)-$COMMIT$QUICK}
mkdir -p "$OUT"

# Scenario sizes, scaled to the 2-core box (see BENCHMARKS.md).
IDLE_CONNS=${IDLE_CONNS:-19000}; IDLE_SECS=${IDLE_SECS:-60}
LOAD_CONNS=${LOAD_CONNS:-10000}; LOAD_USERS=${LOAD_USERS:-2000}
STEP_SECS=${STEP_SECS:-10}; RATES=${RATES:-"100 1000 2000 3000 5000 10000 20000"}
# Publish requests in flight. A durable router answers each publish after its commit, so it
# needs more requests in flight than an in-memory broker to reach the same rate; the same
# number is given to every system.
PUBLISHERS=${PUBLISHERS:-64}
SLOW_RATE=${SLOW_RATE:-1000}; SLOW_SECS=${SLOW_SECS:-60}; STALL_EVERY=${STALL_EVERY:-100}
KAFKA_RATE=${KAFKA_RATE:-1000}; KAFKA_SECS=${KAFKA_SECS:-20}
P99_LIMIT_US=50000
# Broadcast: many streams per user, so each event is many frames (the frames/s budget).
BCAST_CONNS=${BCAST_CONNS:-10000}; BCAST_USERS=${BCAST_USERS:-100}
BCAST_RATES=${BCAST_RATES:-"250 500 1000 2000 4000"}
# Several router processes on one port (http.reuse_port), each holding its share.
MULTI_PROCS=${MULTI_PROCS:-3}; MULTI_CONNS=${MULTI_CONNS:-17000}; MULTI_SECS=${MULTI_SECS:-60}
MULTI_PORT=18210
# How cost grows. Memory: idle streams held, one fresh system per count (the fit is over them).
MEM_STREAMS=${MEM_STREAMS:-"1000 5000 10000 19000"}; MEM_SECS=${MEM_SECS:-10}
# Streams per user: PERUSER_CONNS streams over PERUSER_CONNS/k users, each k offered
# PERUSER_FRAMES frames/s (PERUSER_FRAMES/k events/s), so only the fan-out per event changes.
PERUSER_K=${PERUSER_K:-"1 10 100 1000"}; PERUSER_CONNS=${PERUSER_CONNS:-10000}
PERUSER_FRAMES=${PERUSER_FRAMES:-5000}
# Topics per event (router only): the published type routed to the first N of these, each read
# by its own consumer group, at TOPICS_RATE events/s over the ladder's streams.
TOPICS_ROUTE=(nft-analytics-topic user-nft-events-topic nft-operations-topic nft-notifications-topic)
TOPICS_RATE=${TOPICS_RATE:-1000}

ROUTER_PORT=18200; NCHAN_PORT=18201; PUSHPIN_PORT=18202; ORIGIN_PORT=18299
ulimit -n 20000

log() { echo "[bench $(date +%T)] $*" >&2; }

cd "$ROOT"
log "building loadgen, grip-origin and the router (release)"
cargo build --release -q -p loadgen -p nft-event-router

wait_http() { # URL: until anything answers, at most 60 s
  for _ in $(seq 600); do
    curl -s -o /dev/null --max-time 1 "$1" && return 0
    sleep 0.1
  done
  log "nothing answers at $1"; return 1
}

children() { pgrep -P "$1" | paste -sd, -; }

# The load generator is one address opening thousands of streams and publishing as fast as the
# router takes: the per-address and per-service limits (`[limits]`) would measure themselves.
# The process-wide stream cap stays, with a small reserve, as nchan and Pushpin have theirs.
export NFT_ROUTER__LIMITS__PUBLISH_PER_SEC=0 NFT_ROUTER__LIMITS__CONNECTS_PER_ADDRESS_PER_SEC=0 \
  NFT_ROUTER__LIMITS__CONNECTS_PER_USER_PER_SEC=0 NFT_ROUTER__LIMITS__MAX_STREAMS_PER_ADDRESS=0 \
  NFT_ROUTER__LIMITS__RESERVED_DESCRIPTORS=64

# start_SYSTEM sets PIDS (comma-separated, for --server-pid) and STOP (a command).
start_router() {
  local dir=$WORK/router.$RANDOM
  mkdir -p "$dir" && cp "$ROOT/config.toml" "$dir/"
  # ROUTE_PUBLISHED: the routing row of the type loadgen publishes (a TOML array), if set.
  if [ -n "${ROUTE_PUBLISHED:-}" ]; then
    sed -i "s/^volume_milestone_reached = .*/volume_milestone_reached = $ROUTE_PUBLISHED/" \
      "$dir/config.toml"
  fi
  (cd "$dir" && NFT_ROUTER__HTTP__BIND=127.0.0.1:$ROUTER_PORT \
    NFT_ROUTER__SSE__MAX_CONNECTIONS_PER_USER=${ROUTER_PER_USER:-5} RUST_LOG=warn \
    exec "$ROUTER" > router.log 2>&1) &
  local pid=$!
  wait_http "http://127.0.0.1:$ROUTER_PORT/healthz"
  PIDS=$pid; STOP="kill $pid"; URL=http://127.0.0.1:$ROUTER_PORT
}

start_nchan() {
  local dir=$WORK/nchan.$RANDOM
  mkdir -p "$dir/tmp"
  sed "s/127.0.0.1:18201/127.0.0.1:$NCHAN_PORT/" "$ROOT/bench/nchan/nginx.conf" > "$dir/nginx.conf"
  nginx -p "$dir/" -c "$dir/nginx.conf" > "$dir/out.log" 2>&1 &
  local pid=$!
  wait_http "http://127.0.0.1:$NCHAN_PORT/"
  PIDS=$pid,$(children "$pid"); STOP="kill $pid"; URL=http://127.0.0.1:$NCHAN_PORT
}

start_pushpin() {
  local dir=$WORK/pushpin.$RANDOM
  mkdir -p "$dir/run" "$dir/log" /var/run/zurl
  sed "s|@DIR@|$dir|g; s/^http_port=.*/http_port=$PUSHPIN_PORT/" \
    "$ROOT/bench/pushpin/pushpin.conf" > "$dir/pushpin.conf"
  echo "* 127.0.0.1:$ORIGIN_PORT" > "$dir/routes"
  zurl --config=/etc/zurl.conf > "$dir/zurl.log" 2>&1 &
  local zurl=$!
  "$ORIGIN" 127.0.0.1:$ORIGIN_PORT > "$dir/origin.log" 2>&1 &
  local origin=$!
  pushpin --config="$dir/pushpin.conf" > "$dir/pushpin.log" 2>&1 &
  local pid=$!
  wait_http "http://127.0.0.1:5561/"
  wait_http "http://127.0.0.1:$PUSHPIN_PORT/"
  sleep 1
  PIDS=$pid,$(children "$pid"),$zurl; STOP="kill $pid $zurl $origin"
  URL=http://127.0.0.1:$PUSHPIN_PORT
}

stop_system() { $STOP 2>/dev/null || true; sleep 2; }

loadgen() { # SYSTEM NAME ARGS…: one run, its JSON report saved as SYSTEM-NAME.json
  local system=$1 name=$2; shift 2
  local connect_rate=2000
  [ "$system" = pushpin ] && connect_rate=500   # zurl answers 502 past ~1,000 new streams/s
  local cmd=("$LOADGEN" --target "$system" --url "$URL" --server-pid "$PIDS" \
    --connect-rate $connect_rate --publishers "$PUBLISHERS" --quiet --json "$@")
  echo "${cmd[*]}" | sed "s|$TARGET_DIR/release/||" > "$OUT/$system-$name.cmd"
  log "$system $name: ${cmd[*]:1}"
  "${cmd[@]}" > "$OUT/$system-$name.json" || true
}

p99_of() { # REPORT.json: its p99 in µs, or a huge number when there is none
  python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); l=r.get("latency_us") or {}; print(l.get("p99", 10**9))' "$1" 2>/dev/null || echo 1000000000
}

runs() { case " $SCENARIOS " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }

for system in $SYSTEMS; do
  if runs idle; then
  log "== $system: idle"
  "start_$system"
  loadgen "$system" idle --connections "$IDLE_CONNS" --users "$((IDLE_CONNS / 5 + 1))" \
    --max-per-user 5 --idle --duration "$IDLE_SECS"
  stop_system
  fi

  if runs ladder; then
  log "== $system: rate ladder (fan-out and saturation)"
  "start_$system"
  for rate in $RATES; do
    loadgen "$system" "rate-$rate" --connections "$LOAD_CONNS" --users "$LOAD_USERS" \
      --max-per-user 5 --rate "$rate" --duration "$STEP_SECS" --drain 5
    p99=$(p99_of "$OUT/$system-rate-$rate.json")
    if [ "$p99" -gt "$P99_LIMIT_US" ]; then
      log "$system: p99 ${p99} µs at $rate events/s: stopping the ladder"
      break
    fi
  done
  stop_system
  fi

  if runs slow; then
  log "== $system: slow clients"
  "start_$system"
  loadgen "$system" slow --connections "$LOAD_CONNS" --users "$LOAD_USERS" --max-per-user 5 \
    --rate "$SLOW_RATE" --duration "$SLOW_SECS" --stall-every "$STALL_EVERY" --drain 5
  stop_system
  fi

  if runs kafka; then
  if [ "$system" = router ]; then
  log "== $system: Kafka path"
  "start_$system"
  # `readyz`: the embedded cluster's address, from the router's /readyz.
  loadgen "$system" kafka --connections "$LOAD_CONNS" --users "$LOAD_USERS" --max-per-user 5 \
    --rate "$KAFKA_RATE" --duration "$KAFKA_SECS" --drain 10 --kafka-brokers readyz
  stop_system
  else
    log "== $system: no Kafka path (router only)"
  fi
  fi
done

for system in $SYSTEMS; do
  if runs broadcast; then
  log "== $system: broadcast ($BCAST_CONNS streams over $BCAST_USERS users)"
  ROUTER_PER_USER=$((BCAST_CONNS / BCAST_USERS)) "start_$system"
  for rate in $BCAST_RATES; do
    loadgen "$system" "bcast-$rate" --connections "$BCAST_CONNS" --users "$BCAST_USERS" \
      --max-per-user "$((BCAST_CONNS / BCAST_USERS))" --rate "$rate" --duration "$STEP_SECS" --drain 5
    p99=$(p99_of "$OUT/$system-bcast-$rate.json")
    if [ "$p99" -gt "$P99_LIMIT_US" ]; then
      log "$system: p99 ${p99} µs at $rate events/s: stopping the broadcast ladder"
      break
    fi
  done
  stop_system
  fi
done

for system in $SYSTEMS; do
  if runs memory; then
  for n in $MEM_STREAMS; do
    log "== $system: memory, $n idle streams"
    "start_$system"
    loadgen "$system" "mem-$n" --connections "$n" --users "$((n / 5 + 1))" --max-per-user 5 \
      --idle --duration "$MEM_SECS"
    stop_system
  done
  fi

  if runs peruser; then
  for k in $PERUSER_K; do
    log "== $system: $k streams per user, $PERUSER_FRAMES frames/s offered"
    ROUTER_PER_USER=$k "start_$system"
    loadgen "$system" "peruser-$k" --connections "$PERUSER_CONNS" \
      --users "$((PERUSER_CONNS / k))" --max-per-user "$k" --rate "$((PERUSER_FRAMES / k))" \
      --duration "$STEP_SECS" --drain 5
    stop_system
  done
  fi

  if runs topics && [ "$system" = router ]; then
  for n in $(seq ${#TOPICS_ROUTE[@]}); do
    route=$(printf '"%s", ' "${TOPICS_ROUTE[@]:0:$n}"); route="[${route%, }]"
    log "== router: the published type routed to $route"
    ROUTE_PUBLISHED=$route start_router
    loadgen router "topics-$n" --connections "$LOAD_CONNS" --users "$LOAD_USERS" \
      --max-per-user 5 --rate "$TOPICS_RATE" --duration "$STEP_SECS" --drain 5
    stop_system
  done
  fi
done

rss_sum() { # comma-separated pids: their VmRSS summed, KiB
  local total=0 pid kib
  for pid in ${1//,/ }; do
    kib=$(awk '/^VmRSS:/{print $2}' "/proc/$pid/status" 2>/dev/null || echo 0)
    total=$((total + ${kib:-0}))
  done
  echo "$total"
}

if runs multi && [[ " $SYSTEMS " == *" router "* ]]; then
  log "== router: $MULTI_PROCS processes on one port, $MULTI_CONNS streams each"
  pids=()
  for i in $(seq "$MULTI_PROCS"); do
    dir=$WORK/multi.$i; mkdir -p "$dir" && cp "$ROOT/config.toml" "$dir/"
    (cd "$dir" && NFT_ROUTER__HTTP__BIND=127.0.0.1:$MULTI_PORT NFT_ROUTER__HTTP__REUSE_PORT=true \
      NFT_ROUTER__SSE__MAX_CONNECTIONS_PER_USER=5 RUST_LOG=warn exec "$ROUTER" > router.log 2>&1) &
    pids+=($!)
    wait_http "http://127.0.0.1:$MULTI_PORT/healthz"
  done
  sleep 2
  all=$(IFS=,; echo "${pids[*]}")
  before=$(rss_sum "$all")
  lg=()
  for i in $(seq "$MULTI_PROCS"); do
    cmd=("$LOADGEN" --url "http://127.0.0.1:$MULTI_PORT" --connect-rate 2000 --quiet --json \
      --connections "$MULTI_CONNS" --users "$((MULTI_CONNS / 5))" --max-per-user 5 \
      --user-prefix "lg$i-" --idle --duration "$MULTI_SECS")
    echo "${cmd[*]}" | sed "s|$TARGET_DIR/release/||" > "$OUT/router-multi-$i.cmd"
    "${cmd[@]}" > "$OUT/router-multi-$i.json" &
    lg+=($!)
  done
  # Every loadgen has connected well before half of its hold: read the whole box then.
  sleep $((MULTI_CONNS / 2000 + MULTI_SECS / 2))
  during=$(rss_sum "$all")
  established=$(ss -Htn state established "( sport = :$MULTI_PORT )" | wc -l)
  per_process=$(for pid in "${pids[@]}"; do
    ls "/proc/$pid/fd" 2>/dev/null | wc -l; done | paste -sd, -)
  wait "${lg[@]}" || true
  printf '{"processes": %s, "rss_before_kib": %s, "rss_during_kib": %s, "established": %s, "descriptors": [%s]}\n' \
    "$MULTI_PROCS" "$before" "$during" "$established" "$per_process" > "$OUT/router-multi.json"
  kill "${pids[@]}" 2>/dev/null || true
  sleep 2
fi

REPORT=$ROOT/BENCHMARKS.md
[ -n "$QUICK" ] && REPORT=$OUT/REPORT.md
log "writing $REPORT"
python3 "$ROOT/bench/report.py" "$OUT" "$REPORT" \
  --machine "$(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(free -g | awk '/Mem:/{print $2}') GiB, kernel $(uname -r)" \
  --versions "nginx $(nginx -v 2>&1 | cut -d/ -f2), libnginx-mod-nchan $(dpkg-query -W -f '${Version}' libnginx-mod-nchan), pushpin $(dpkg-query -W -f '${Version}' pushpin), zurl $(dpkg-query -W -f '${Version}' zurl), $(rustc --version)" \
  --commit "$COMMIT" \
  --sizes "idle $IDLE_CONNS streams (5 per user) held $IDLE_SECS s; the rate ladder $LOAD_CONNS streams over $LOAD_USERS users, $STEP_SECS s per step at $RATES events/s, stopping at the first step with p99 > 50 ms; broadcast $BCAST_CONNS streams over $BCAST_USERS users at $BCAST_RATES events/s; slow clients: the ladder's streams with every ${STALL_EVERY}th not reading, $SLOW_RATE events/s for $SLOW_SECS s"
log "done: results in $OUT"

#!/usr/bin/env python3
"""Turns the loadgen JSON reports of bench/run.sh into BENCHMARKS.md.

Usage: report.py RESULTS_DIR OUT.md --machine TEXT --versions TEXT --commit SHA
"""
import argparse
import glob
import json
import os
import time

import growth
from plot import line_chart

SYSTEMS = ["router", "nchan", "pushpin"]
P99_LIMIT_US = 50_000


def load(results, system, name):
    path = os.path.join(results, f"{system}-{name}.json")
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def ladder(results, system, kind="rate"):
    steps = []
    for path in glob.glob(os.path.join(results, f"{system}-{kind}-*.json")):
        rate = int(path.rsplit("-", 1)[1].split(".")[0])
        r = load(results, system, f"{kind}-{rate}")
        if r:
            steps.append((rate, r))
    return sorted(steps, key=lambda s: s[0])


def sustained(rate, r):
    """Publishing kept up, nothing was lost, and p99 stayed within the limit."""
    lat = r.get("latency_us") or {}
    pub = r.get("publish") or {}
    d = r["delivery"]
    return (
        lat.get("p99", 10**12) <= P99_LIMIT_US
        and pub.get("accepted", 0) >= 0.95 * pub.get("attempted", 1)
        and pub.get("accepted_per_sec", 0) >= 0.9 * rate
        and d["missing"] == 0
    )


def ms(us):
    return "–" if us is None else f"{us / 1000:.2f} ms"


def signed_ms(us):
    return "–" if us is None else f"{us / 1000:+.2f} ms"


def kafka_section(results):
    """The Kafka path table: router only (nchan and Pushpin have no Kafka path)."""
    r = load(results, "router", "kafka")
    out = ["## Kafka path (router only)", ""]
    if not r or not r.get("kafka"):
        out += ["Not run (`SCENARIOS=kafka`).", ""]
        return out
    k, sc = r["kafka"], r["scenario"]
    broker = r.get("kafka_latency_us") or {}
    sse = k.get("sse_latency_us") or {}
    gap = k.get("record_to_frame_us") or {}
    out += [
        f"{sc['connections']:,} streams over {sc['users']:,} users, "
        f"{sc['rate']:,.0f} events/s for {sc['duration_secs']:.0f} s; a consumer of the load "
        f"generator's own (unique group, assigned at the end of every partition before "
        f"publishing) reads `{', '.join(k['topics'])}`, where the router routes the published "
        f"`volume_milestone_reached`. *Accepted* is the send time the publisher writes into "
        f"each event; *broker* is when that consumer received the record; *SSE* is the first "
        f"frame of the same event on any stream. The router hands an event to its streams at "
        f"the journal commit and publishes it to Kafka through the outbox relay, in parallel: "
        f"the SSE frame does not wait for the broker, so *broker → SSE* is negative when the "
        f"frame came first. nchan and Pushpin have no Kafka path: no column for them.",
        "",
        "| figure | p50 | p90 | p99 | p99.9 | max | n |",
        "|---|---|---|---|---|---|---|",
    ]
    for label, l, fmt in [
        ("accepted → record on the broker", broker, ms),
        ("accepted → first SSE frame (same events)", sse, ms),
        ("record on the broker → first SSE frame", gap, signed_ms),
    ]:
        out.append(f"| {label} | {fmt(l.get('p50'))} | {fmt(l.get('p90'))} | "
                   f"{fmt(l.get('p99'))} | {fmt(l.get('p999'))} | {fmt(l.get('max'))} | "
                   f"{num(l.get('count'))} |")
    out += [
        "",
        f"Records: {k['records']:,} of {k['expected']:,} expected on the broker, "
        f"{k['missing']:,} missing by the end of the drain, {k['duplicates']:,} duplicate, "
        f"{k['foreign']:,} foreign; SSE: {problems(r)}. The Kafka-path performance budget "
        f"(record → SSE frame p99 ≤ 10 ms) reads here as the *accepted → record* and "
        f"*accepted → SSE* rows side by side, since the frame does not come from the record.",
        "",
    ]
    return out


def multi_section(results):
    """Several router processes sharing one port (http.reuse_port)."""
    out = ["## Several router processes on one port (router only)", ""]
    m = load(results, "router", "multi")
    runs = [r for r in (load(results, "router", f"multi-{i}") for i in range(1, 9)) if r]
    if not m or not runs:
        return out + ["Not run (`SCENARIOS=multi`).", ""]
    held = sum(r["connections"]["held"] for r in runs)
    asked = sum(r["connections"]["requested"] for r in runs)
    errors = sum(r["connections"]["connect_errors"] for r in runs)
    delta = (m["rss_during_kib"] - m["rss_before_kib"]) * 1024
    out += [
        f"{m['processes']} router processes with `http.reuse_port = true` on one port, each on "
        f"its own embedded defaults; {len(runs)} load generators (one process holds at most "
        f"~19,000 sockets under the 20,000-descriptor limit) held streams for "
        f"{runs[0]['scenario']['duration_secs']:.0f} s. Nothing is published: cross-process "
        f"delivery arrives with the scale-out work.",
        "",
        "| figure | value |",
        "|---|---|",
        f"| streams held, all load generators | {held:,} of {asked:,} ({errors:,} connect errors) |",
        f"| established on the port (`ss`, mid-hold) | {m['established']:,} |",
        f"| descriptors per router process (mid-hold) | {', '.join(f'{d:,}' for d in m['descriptors'])} |",
        f"| routers' RSS, before → holding | {mib(m['rss_before_kib'])} → {mib(m['rss_during_kib'])} |",
        f"| RSS per stream, all processes | {kib(delta / held) if held else '–'} |",
        "",
    ]
    return out


def kib(b):
    return "–" if b is None else f"{b / 1024:.1f} KiB"


def mib(k):
    return "–" if k is None else f"{k / 1024:.0f} MiB"


def num(x, fmt="{:,.0f}"):
    return "–" if x is None else fmt.format(x)


def ratio(a, b, lower_is_better):
    if a is None or b is None or a == 0 or b == 0:
        return "–"
    r = a / b
    if abs(r - 1) < 0.005:
        return "1.00× (even)"
    better = (r < 1) if lower_is_better else (r > 1)
    return f"{r:.2f}× ({'better' if better else 'worse'})"


def figures(results, system):
    f = {}
    idle = load(results, system, "idle")
    if idle:
        c, s = idle["connections"], idle.get("server") or {}
        f["idle_held"] = c["held"]
        f["idle_requested"] = c["requested"]
        f["idle_errors"] = c["errors_by_cause"]
        f["idle_per_conn"] = s.get("rss_per_connection_bytes")
        f["idle_rss_after"] = s.get("rss_after_kib")
    steps = ladder(results, system)
    f["steps"] = steps
    ok = [(rate, r) for rate, r in steps if sustained(rate, r)]
    if ok:
        rate, r = ok[-1]
        f["max_rate"] = rate
        f["max_deliveries"] = r["delivery"]["frames_per_sec"]
        f["max_peak"] = r["delivery"]["peak_frames_per_sec"]
    fan = [(rate, r) for rate, r in ok if rate <= 10_000]
    fan = fan[-1] if fan else (steps[0] if steps else None)
    if fan:
        rate, r = fan
        lat = r.get("latency_us") or {}
        f["fan_rate"] = rate
        f["fan_sustained"] = sustained(rate, r)
        for q in ["p50", "p90", "p99", "p999", "max"]:
            f[f"fan_{q}"] = lat.get(q)
        f["fan_cpu"] = (r.get("server") or {}).get("cpu_percent")
        f["fan_cpu_kframe"] = cpu_per_kframe(r)
        f["fan_loadgen_cpu"] = (r.get("loadgen") or {}).get("cpu_percent")
        f["fan_problems"] = problems(r)
    bcast = ladder(results, system, "bcast")
    f["bcast_steps"] = bcast
    ok = [(rate, r) for rate, r in bcast if sustained(rate, r)]
    if ok:
        rate, r = ok[-1]
        lat = r.get("latency_us") or {}
        f["bcast_rate"] = rate
        f["bcast_frames"] = r["delivery"]["frames_per_sec"]
        f["bcast_peak"] = r["delivery"]["peak_frames_per_sec"]
        f["bcast_p50"], f["bcast_p99"] = lat.get("p50"), lat.get("p99")
    slow = load(results, system, "slow")
    if slow:
        lat = slow.get("latency_us") or {}
        s = slow.get("server") or {}
        f["slow_p50"], f["slow_p99"] = lat.get("p50"), lat.get("p99")
        f["slow_stalled"] = slow["connections"]["stalled"]
        f["slow_missing"] = slow["delivery"]["missing"]
        f["slow_ended"] = slow["connections"]["ended_early"]
        f["slow_rss_connected"] = s.get("rss_connected_kib")
        f["slow_rss_after"] = s.get("rss_after_kib")
    return f


def step_rows(F, key):
    """One table row per ladder step (`steps` or `bcast_steps`) of every system."""
    rows = []
    for s in SYSTEMS:
        for rate, r in F[s][key]:
            lat = r.get("latency_us") or {}
            pub = r.get("publish") or {}
            d = r["delivery"]
            rows.append(
                f"| {s} | {rate:,} | {pub.get('accepted_per_sec', 0):,.0f} | "
                f"{d['frames_per_sec']:,.0f} / {d['peak_frames_per_sec']:,} | {ms(lat.get('p50'))} | "
                f"{ms(lat.get('p99'))} | {ms(lat.get('p999'))} | "
                f"{num((r.get('server') or {}).get('cpu_percent'))} % | "
                f"{num(cpu_per_kframe(r))} ms | "
                f"{num((r.get('loadgen') or {}).get('cpu_percent'))} % | "
                f"{'sustained' if sustained(rate, r) else 'not sustained'}; {problems(r)} |")
    return rows


def charts(F, key, results, out_dir, prefix, xlabel):
    """Plots a ladder (`steps` or `bcast_steps`) of every system as SVG beside its results:
    p99 and CPU per 1,000 frames against events/s. Answers the report's image lines."""
    p99 = {s: [(rate, r["latency_us"]["p99"] / 1000) for rate, r in F[s][key]
               if (r.get("latency_us") or {}).get("p99") is not None] for s in SYSTEMS}
    cpu = {s: [(rate, cpu_per_kframe(r)) for rate, r in F[s][key]
               if cpu_per_kframe(r) is not None] for s in SYSTEMS}
    lines = []
    for name, title, ylabel, series in (
        ("p99", "p99 latency by offered rate", "p99 (ms)", p99),
        ("cpu", "server CPU per 1,000 frames by offered rate", "CPU (ms per 1,000 frames)", cpu),
    ):
        series = {s: pts for s, pts in series.items() if pts}
        svg = os.path.join(results, f"{prefix}-{name}.svg")
        if line_chart(svg, title, xlabel, ylabel, series):
            lines.append(f"![{title}]({os.path.relpath(svg, out_dir)})")
    return lines


def cpu_per_kframe(r):
    """The server's CPU time per thousand frames delivered, in ms: what one frame costs, all
    of the system's work for it included (for the router: the store, Kafka, the consumers)."""
    cpu = (r.get("server") or {}).get("cpu_percent")
    frames = r["delivery"].get("frames_per_sec") or 0
    if cpu is None or frames <= 0:
        return None
    return cpu * 10_000 / frames


def problems(r):
    c, d = r["connections"], r["delivery"]
    p = []
    for count, what in [
        (c["connect_errors"], "connect errors"),
        (c["ended_early"], "ended early"),
        ((r.get("publish") or {}).get("failed", 0), "publish failures"),
        (d["missing"], "missing"),
        (d["duplicates"], "duplicate"),
        (d["out_of_order"], "out of order"),
        (d["misrouted"], "misrouted"),
    ]:
        if count:
            p.append(f"{count:,} {what}")
    return ", ".join(p) or "clean"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("results")
    ap.add_argument("out")
    ap.add_argument("--machine", default="")
    ap.add_argument("--versions", default="")
    ap.add_argument("--commit", default="")
    # The sizes the run used, as bench/run.sh passes them.
    ap.add_argument("--sizes", default="")
    a = ap.parse_args()
    F = {s: figures(a.results, s) for s in SYSTEMS}
    g = lambda s, k: F[s].get(k)

    rows = [
        ("Idle: streams held", "idle_held", lambda v: num(v), None),
        ("Idle: server RSS per connection", "idle_per_conn", kib, True),
        ("Idle: server RSS holding them", "idle_rss_after", mib, None),
        ("Saturation: highest sustained rate (events/s)", "max_rate", num, False),
        ("Saturation: deliveries/s at that rate (mean)", "max_deliveries", num, False),
        ("Saturation: deliveries/s, best second", "max_peak", num, False),
        ("Fan-out: rate measured (events/s)", "fan_rate", num, None),
        ("Fan-out: p50", "fan_p50", ms, True),
        ("Fan-out: p90", "fan_p90", ms, True),
        ("Fan-out: p99", "fan_p99", ms, True),
        ("Fan-out: p99.9", "fan_p999", ms, True),
        ("Fan-out: max", "fan_max", ms, True),
        ("Fan-out: server CPU (% of a core)", "fan_cpu", lambda v: num(v), True),
        ("Fan-out: server CPU per 1,000 deliveries (ms)", "fan_cpu_kframe", lambda v: num(v), True),
        ("Fan-out: load generator CPU (% of a core, same box)", "fan_loadgen_cpu", lambda v: num(v), None),
        ("Fan-out: correctness", "fan_problems", lambda v: v or "–", None),
        ("Broadcast: highest sustained rate (events/s, 100 streams per user)", "bcast_rate", num, False),
        ("Broadcast: frames/s at that rate (mean)", "bcast_frames", num, False),
        ("Broadcast: frames/s, best second", "bcast_peak", num, False),
        ("Broadcast: p50 at that rate", "bcast_p50", ms, True),
        ("Broadcast: p99 at that rate", "bcast_p99", ms, True),
        ("Slow clients: others' p50", "slow_p50", ms, True),
        ("Slow clients: others' p99", "slow_p99", ms, True),
        ("Slow clients: others' missing deliveries", "slow_missing", num, True),
        ("Slow clients: server RSS connected → after the run", None, None, None),
    ]
    out = []
    w = out.append
    w("# Benchmarks: nft-event-router side by side with nchan and Pushpin")
    w("")
    w(f"Run on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} by `bench/run.sh` "
      f"(working tree at commit `{a.commit}` plus uncommitted changes).")
    w("")
    w(f"* Machine: {a.machine}; everything on loopback, the load generator on the same two cores.")
    w(f"* Versions: {a.versions}.")
    w("")
    w("## What was run, and how it was scaled")
    w("")
    w("Each system was started fresh for each scenario group (idle; the rate ladder; slow "
      "clients) and stopped after it. The same `loadgen` binary drove all three: SSE "
      "subscribers spread over 127.0.0.2–251, a paced publisher (64 requests in flight, `PUBLISHERS`), "
      "latency from the send timestamp carried in each event to the frame's arrival "
      "(HdrHistogram), server RSS and CPU summed over the system's processes.")
    w("")
    w("* **router**: `target/release/nft-event-router` on `config.toml` defaults (SQLite store, "
      "embedded Kafka, in-process cache, one HTTP worker per core), with "
      "`sse.max_connections_per_user` raised to 5 so that 10,000 streams fit 2,000 users. Its "
      "path stores each event durably and relays it through Kafka; the peers are pure "
      "in-memory pub/sub.")
    w("* **nchan**: `bench/nchan/nginx.conf`, one worker, `nchan_subscriber eventsource` at "
      "`/sub/{user}`, `nchan_publisher` at `/pub/{user}`; RSS of master + worker.")
    w("* **Pushpin**: `bench/pushpin/pushpin.conf` (Debian's, with its own run/log dirs and the "
      "handler's `message_rate`/`message_hwm` throttle raised), routes to `grip-origin` "
      "(loadgen crate), `zurl` with `/etc/zurl.conf`; publishing through the HTTP endpoint "
      "`:5561/publish/`; RSS of runner + condure + pushpin-proxy + pushpin-handler + zurl. "
      "Streams were opened at 500/s (at 2,000/s zurl answered 500/502).")
    if a.sizes:
        w(f"* Scaled to the 2-core box: {a.sizes}; *fan-out* is the highest sustained step "
          "≤ 10,000 events/s (or the first step if none was).")
    w("* Per-user order for the peers is checked on `lgSeq`, the publisher's per-user sequence "
      "carried in the data (Pushpin also gets it as `id:`; nchan sets its own `id:`).")
    w("")
    w("## Side by side")
    w("")
    w("| figure | router | nchan | Pushpin | router / nchan | router / Pushpin |")
    w("|---|---|---|---|---|---|")
    for label, key, fmt, lower in rows:
        if key is None:
            cells = [f"{mib(g(s, 'slow_rss_connected'))} → {mib(g(s, 'slow_rss_after'))}" for s in SYSTEMS]
            w(f"| {label} | " + " | ".join(cells) + " | | |")
            continue
        cells = [fmt(g(s, key)) if g(s, key) is not None else "–" for s in SYSTEMS]
        if lower is None:
            rs = ["", ""]
        else:
            rs = [ratio(g("router", key), g(p, key), lower) for p in ("nchan", "pushpin")]
        w(f"| {label} | " + " | ".join(cells) + " | " + " | ".join(rs) + " |")
    w("")
    w("## Rate ladder, every step")
    w("")
    w("10 s per step; a step is *sustained* when publishing kept up (≥ 90 % of the rate "
      "accepted), nothing was missing and p99 ≤ 50 ms. The ladder stops after the first step "
      "with p99 > 50 ms.")
    w("")
    w("| system | events/s asked | accepted/s | deliveries/s (mean / best s) | p50 | p99 | p99.9 | server CPU | server CPU per 1,000 frames | load generator CPU | result |")
    w("|---|---|---|---|---|---|---|---|---|---|---|")
    out.extend(step_rows(F, "steps"))
    w("")
    out_dir = os.path.dirname(os.path.abspath(a.out))
    for line in charts(F, "steps", os.path.abspath(a.results), out_dir, "ladder", "events/s asked"):
        w(line)
        w("")
    w("## Broadcast ladder, every step")
    w("")
    w("Many streams per user (each event is one frame on every stream of its user), so the "
      "frames/s a system can write is measured apart from the per-event cost; same rules as "
      "the rate ladder.")
    w("")
    w("| system | events/s asked | accepted/s | frames/s (mean / best s) | p50 | p99 | p99.9 | server CPU | server CPU per 1,000 frames | load generator CPU | result |")
    w("|---|---|---|---|---|---|---|---|---|---|---|")
    out.extend(step_rows(F, "bcast_steps"))
    w("")
    for line in charts(F, "bcast_steps", os.path.abspath(a.results), out_dir, "broadcast",
                       "events/s asked (100 streams per user)"):
        w(line)
        w("")
    out.extend(multi_section(a.results))
    out.extend(kafka_section(a.results))
    out.extend(growth.section(os.path.abspath(a.results), out_dir, SYSTEMS, ladder, cpu_per_kframe,
                              problems))
    w("## Exact commands")
    w("")
    w("```sh")
    for path in sorted(glob.glob(os.path.join(a.results, "*.cmd"))):
        with open(path) as f:
            w(f.read().strip())
    w("```")
    w("")
    with open(a.out, "w") as f:
        f.write("\n".join(out) + "\n")


if __name__ == "__main__":
    main()

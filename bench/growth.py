"""The cost model of the benchmark report: how memory, frames and CPU grow with streams, streams
per user and topics per event. Reads the `mem-N`, `peruser-K` and `topics-N` results of
bench/run.sh (through the report's `ladder`, which answers `(n, report)` by n); writes the
report's tables and SVG charts."""
import os

from plot import line_chart


def fit(points):
    """Least squares `y = a + b·x`: (a, b, r²), or None under two distinct x."""
    if len({x for x, _ in points}) < 2:
        return None
    n = len(points)
    mx = sum(x for x, _ in points) / n
    my = sum(y for _, y in points) / n
    sxx = sum((x - mx) ** 2 for x, _ in points)
    sxy = sum((x - mx) * (y - my) for x, y in points)
    b = sxy / sxx
    a = my - b * mx
    ss_tot = sum((y - my) ** 2 for _, y in points)
    ss_res = sum((y - a - b * x) ** 2 for x, y in points)
    return a, b, (1 - ss_res / ss_tot) if ss_tot else 1.0


def cpu_per_event(r):
    """Server CPU per thousand events accepted, in ms."""
    cpu = (r.get("server") or {}).get("cpu_percent")
    rate = (r.get("publish") or {}).get("accepted_per_sec") or 0
    if cpu is None or rate <= 0:
        return None
    return cpu * 10_000 / rate


def memory_rows(results, systems, ladder):
    """Idle streams held against RSS: one row per count and system, then the fit per system."""
    rows, fits, series = [], [], {}
    for system in systems:
        points = []
        for n, r in ladder(results, system, "mem"):
            held = r["connections"]["held"]
            rss = (r.get("server") or {}).get("rss_connected_kib")
            if rss is None:
                continue
            points.append((held, rss))
            per = (rss - r["server"]["rss_before_kib"]) * 1024 / held if held else None
            rows.append(f"| {system} | {n:,} | {held:,} | {rss / 1024:.1f} MiB | "
                        f"{'–' if per is None else f'{per / 1024:.1f} KiB'} |")
        f = fit(points)
        if f:
            a, b, r2 = f
            fits.append(f"| {system} | {a / 1024:.1f} MiB | {b:.2f} KiB | {r2:.4f} | "
                        f"{(a + b * 100_000) / 1024 / 1024:.2f} GiB |")
            series[system] = [(x, y / 1024) for x, y in points]
    return rows, fits, series


def peruser_rows(results, systems, ladder, cpu_per_kframe, problems):
    rows, frames, cpu = [], {}, {}
    for system in systems:
        for k, r in ladder(results, system, "peruser"):
            lat = r.get("latency_us") or {}
            d = r["delivery"]
            kf = cpu_per_kframe(r)
            rows.append(
                f"| {system} | {k:,} | {r['scenario']['users']:,} | {r['scenario']['rate']:,.0f} | "
                f"{d['frames_per_sec']:,.0f} | {ms(lat.get('p50'))} | {ms(lat.get('p99'))} | "
                f"{num((r.get('server') or {}).get('cpu_percent'))} % | {num(kf)} | "
                f"{num(cpu_per_event(r))} | {problems(r)} |")
            if lat.get("p99") is not None:
                frames.setdefault(system, []).append((k, lat["p99"] / 1000))
            if kf is not None:
                cpu.setdefault(system, []).append((k, kf))
    return rows, frames, cpu


def topics_rows(results, ladder, problems):
    rows, cpu = [], []
    base = None
    for n, r in ladder(results, "router", "topics"):
        lat = r.get("latency_us") or {}
        per = cpu_per_event(r)
        if base is None:
            base = per
        extra = "–" if per is None or base is None or n == 1 else f"{(per - base) / (n - 1):+,.0f}"
        rows.append(f"| {n} | {(r.get('publish') or {}).get('accepted_per_sec', 0):,.0f} | "
                    f"{ms(lat.get('p50'))} | {ms(lat.get('p99'))} | "
                    f"{num((r.get('server') or {}).get('cpu_percent'))} % | {num(per)} | {extra} | "
                    f"{problems(r)} |")
        if per is not None:
            cpu.append((n, per))
    return rows, cpu


def ms(us):
    return "–" if us is None else f"{us / 1000:.2f} ms"


def num(x):
    return "–" if x is None else f"{x:,.0f}"


def section(results, out_dir, systems, ladder, cpu_per_kframe, problems):
    """The report's "How cost grows" section, with its charts written beside the results."""
    out = ["## How cost grows", ""]
    mem, fits, mem_series = memory_rows(results, systems, ladder)
    per, per_p99, per_cpu = peruser_rows(results, systems, ladder, cpu_per_kframe, problems)
    top, top_cpu = topics_rows(results, ladder, problems)
    if not (mem or per or top):
        return out + ["Not run (`bench/run.sh --growth`).", ""]

    def chart(name, title, xlabel, ylabel, series):
        svg = os.path.join(results, f"{name}.svg")
        if line_chart(svg, title, xlabel, ylabel, {s: p for s, p in series.items() if p}):
            out.extend([f"![{title}]({os.path.relpath(svg, out_dir)})", ""])

    if mem:
        out += [
            "### Memory by open streams",
            "",
            "Idle streams (5 per user), a fresh server per count, RSS once every stream is "
            "connected; *per stream* is (RSS − RSS before connecting) / streams held.",
            "",
            "| system | streams asked | held | RSS | per stream |",
            "|---|---|---|---|---|",
            *mem,
            "",
            "Least-squares fit RSS = base + per-stream × streams over those counts:",
            "",
            "| system | base | per stream | r² | 100,000 streams by the fit |",
            "|---|---|---|---|---|",
            *fits,
            "",
        ]
        chart("memory", "RSS by idle streams held", "streams held", "RSS (MiB)", mem_series)
    if per:
        out += [
            "### Frames by streams per user",
            "",
            "The same streams spread over fewer users: k streams per user, the same frames/s "
            "offered at every k (k times fewer events), so what changes is the fan-out of one "
            "event. *CPU per 1,000 events* is what one published event costs whole.",
            "",
            "| system | streams per user | users | events/s | frames/s | p50 | p99 | server CPU | "
            "CPU per 1,000 frames (ms) | CPU per 1,000 events (ms) | result |",
            "|---|---|---|---|---|---|---|---|---|---|---|",
            *per,
            "",
        ]
        chart("peruser-p99", "p99 by streams per user", "streams per user", "p99 (ms)", per_p99)
        chart("peruser-cpu", "server CPU per 1,000 frames by streams per user",
              "streams per user", "CPU (ms per 1,000 frames)", per_cpu)
    if top:
        out += [
            "### Cost by topics per event (router only)",
            "",
            "The published type routed to 1–4 topics (`nft-analytics-topic`, then "
            "`user-nft-events-topic`, `nft-operations-topic`, `nft-notifications-topic`), each "
            "read by its own consumer group: every topic is one more Kafka record and one more "
            "consumer's work per event. The number of event *types* in the routing table costs "
            "nothing per event (one map lookup); what a type costs is the topics its row names.",
            "",
            "| topics | accepted/s | p50 | p99 | server CPU | CPU per 1,000 events (ms) | "
            "each topic past the first (ms per 1,000 events) | result |",
            "|---|---|---|---|---|---|---|---|",
            *top,
            "",
        ]
        chart("topics-cpu", "router CPU per 1,000 events by topics per event",
              "topics the event is routed to", "CPU (ms per 1,000 events)", {"router": top_cpu})
    return out

"""Line charts as standalone SVG, for the benchmark report: no plotting library needed, so
the bench runs on a box with only Python's standard library."""
from xml.sax.saxutils import escape

WIDTH, HEIGHT = 640, 360
LEFT, RIGHT, TOP, BOTTOM = 70, 150, 40, 50
COLOURS = {"router": "#1f77b4", "nchan": "#d62728", "pushpin": "#2ca02c"}


def nice_ticks(high, count=5):
    """Round tick values from 0 to at least `high`."""
    if high <= 0:
        return [0, 1]
    raw = high / count
    magnitude = 10 ** len(str(int(raw))) / 10 if raw >= 1 else 1
    while magnitude > raw:
        magnitude /= 10
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    ticks = [0.0]
    while ticks[-1] < high:
        ticks.append(ticks[-1] + step)
    return ticks


def label(value):
    return f"{value:,.0f}" if value >= 10 or value == int(value) else f"{value:g}"


def line_chart(path, title, xlabel, ylabel, series):
    """Writes `series` ({name: [(x, y), ...]}) as one polyline per name. Points are plotted
    at their x values (not evenly spaced), so a ladder's shape reads true."""
    points = [p for pts in series.values() for p in pts]
    if not points:
        return False
    xticks = nice_ticks(max(x for x, _ in points))
    yticks = nice_ticks(max(y for _, y in points))
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def sx(x):
        return LEFT + plot_w * x / xticks[-1]

    def sy(y):
        return TOP + plot_h * (1 - y / yticks[-1])

    svg = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
        f'viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="12">',
        f'<rect width="{WIDTH}" height="{HEIGHT}" fill="white"/>',
        f'<text x="{WIDTH / 2}" y="22" text-anchor="middle" font-size="14">{escape(title)}</text>',
    ]
    for y in yticks:
        svg.append(f'<line x1="{LEFT}" x2="{LEFT + plot_w}" y1="{sy(y):.1f}" y2="{sy(y):.1f}" '
                   'stroke="#ddd"/>')
        svg.append(f'<text x="{LEFT - 6}" y="{sy(y) + 4:.1f}" text-anchor="end">{label(y)}</text>')
    for x in xticks:
        svg.append(f'<text x="{sx(x):.1f}" y="{TOP + plot_h + 18}" text-anchor="middle">'
                   f'{label(x)}</text>')
    svg.append(f'<line x1="{LEFT}" x2="{LEFT + plot_w}" y1="{TOP + plot_h}" y2="{TOP + plot_h}" '
               'stroke="black"/>')
    svg.append(f'<line x1="{LEFT}" x2="{LEFT}" y1="{TOP}" y2="{TOP + plot_h}" stroke="black"/>')
    svg.append(f'<text x="{LEFT + plot_w / 2}" y="{HEIGHT - 10}" text-anchor="middle">'
               f'{escape(xlabel)}</text>')
    svg.append(f'<text transform="translate(16 {TOP + plot_h / 2}) rotate(-90)" '
               f'text-anchor="middle">{escape(ylabel)}</text>')
    for i, (name, pts) in enumerate(sorted(series.items())):
        colour = COLOURS.get(name, "#555")
        pts = sorted(pts)
        path_points = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in pts)
        svg.append(f'<polyline points="{path_points}" fill="none" stroke="{colour}" '
                   'stroke-width="2"/>')
        for x, y in pts:
            svg.append(f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="3" fill="{colour}">'
                       f'<title>{escape(name)}: {label(x)} → {y:.2f}</title></circle>')
        ly = TOP + 16 * i + 6
        svg.append(f'<line x1="{LEFT + plot_w + 14}" x2="{LEFT + plot_w + 34}" y1="{ly}" '
                   f'y2="{ly}" stroke="{colour}" stroke-width="2"/>')
        svg.append(f'<text x="{LEFT + plot_w + 40}" y="{ly + 4}">{escape(name)}</text>')
    svg.append("</svg>")
    with open(path, "w") as f:
        f.write("\n".join(svg) + "\n")
    return True

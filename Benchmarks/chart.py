#!/usr/bin/env python3
"""Draws a benchmark's table as a grouped horizontal bar chart (SVG), Ferry beside its anchors.

    python3 Benchmarks/chart.py --title "..." --unit "req/s" OUT.svg < rows.tsv

rows.tsv is tab-separated: a header line (the row label's name, then one name per series, the
first series being Ferry), then one line per row with a label and a number per series ("-" or
an empty cell for a series that has no figure in that row). Each bar is labelled with its value;
an anchor's bar (a series whose name does not begin with "ferry") also with first series /
anchor, the ratio the scripts' tables print.
"""
import argparse
import html
import sys

COLOURS = ["#2b6cb0", "#9aa5b1", "#d69e2e", "#38a169", "#c53030"]


def number(cell):
    try:
        return float(cell)
    except ValueError:
        return None


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", help="the SVG file to write")
    parser.add_argument("--title", required=True)
    parser.add_argument("--unit", required=True, help="what the numbers count, e.g. req/s or bytes")
    parser.add_argument("--lower-is-better", action="store_true", help="say so under the title (memory, latency)")
    args = parser.parse_args()

    lines = [line.rstrip("\n").split("\t") for line in sys.stdin if line.strip()]
    if len(lines) < 2:
        sys.exit("chart.py: no rows on standard input (a header line, then one line per row)")
    series = lines[0][1:]
    rows = [(cells[0], [number(c) for c in cells[1:] + [""] * (len(series) - len(cells) + 1)]) for cells in lines[1:]]

    bar, gap, left, top, width = 14, 16, 170, 52, 820
    height = top + sum(len(series) * bar + gap for _ in rows) + 20
    peak = max((v for _, values in rows for v in values if v is not None), default=1) or 1
    scale = (width - left - 190) / peak
    better = "lower is better" if args.lower_is_better else "higher is better"
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="12">',
        '<rect width="100%" height="100%" fill="white"/>',
        f'<text x="10" y="20" font-size="14">{html.escape(args.title)}</text>',
        f'<text x="10" y="38" fill="#555">{html.escape(args.unit)}, {better}; the ratio on an anchor\'s bar is Ferry / anchor</text>',
    ]
    y = top
    for label, values in rows:
        parts.append(f'<text x="10" y="{y + len(series) * bar / 2 + 4:.0f}">{html.escape(label)}</text>')
        ferry = values[0]
        for index, (name, value) in enumerate(zip(series, values)):
            if value is not None:
                length = value * scale
                text = f"{value:,.0f} {name}"
                if index > 0 and not name.startswith("ferry") and ferry is not None and value:
                    text += f" ({ferry / value:.2f}x)"
                colour = COLOURS[index % len(COLOURS)]
                parts.append(f'<rect x="{left}" y="{y}" width="{length:.1f}" height="{bar - 1}" fill="{colour}"/>')
                parts.append(f'<text x="{left + length + 4:.1f}" y="{y + bar - 3}">{html.escape(text)}</text>')
            y += bar
        y += gap
    parts.append("</svg>")
    with open(args.out, "w") as out:
        out.write("\n".join(parts) + "\n")
    print(f"chart: {args.out}")


if __name__ == "__main__":
    main()

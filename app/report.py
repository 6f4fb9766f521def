"""The main job's report: a JSON document and an HTML page with SVG charts.

The charts are drawn here as plain SVG, so the report needs no plotting
library and opens in any browser without network access.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson

CHART_WIDTH = 640
CHART_HEIGHT = 220
COLORS = ("#3b6ea5", "#e07b39", "#7a9e45", "#9a5ea8")


def write_report(report: dict[str, Any], state_dir: Path) -> tuple[Path, Path]:
    """Write ``report.json`` and ``report.html`` into ``state_dir``."""
    state_dir.mkdir(parents=True, exist_ok=True)
    json_path = state_dir / "report.json"
    html_path = state_dir / "report.html"
    json_path.write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2))
    html_path.write_text(render_html(report), encoding="utf-8")
    return json_path, html_path


def bar_chart(
    title: str,
    labels: Sequence[str],
    series: dict[str, Sequence[float]],
    stacked: bool = False,
) -> str:
    """Return an SVG bar chart: one group of bars per label, one bar per series."""
    margin_left, margin_bottom, top = 60, 40, 30
    plot_w = CHART_WIDTH - margin_left - 20
    plot_h = CHART_HEIGHT - margin_bottom - top
    if stacked:
        peak = max(
            (sum(values) for values in zip(*series.values(), strict=True)), default=0.0
        )
    else:
        peak = max(
            (max(values, default=0.0) for values in series.values()), default=0.0
        )
    peak = peak or 1.0
    group_w = plot_w / max(1, len(labels))
    bar_w = group_w * 0.8 / (1 if stacked else max(1, len(series)))
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{CHART_WIDTH}" '
        f'height="{CHART_HEIGHT}" role="img" aria-label="{html.escape(title)}">',
        f'<text x="{margin_left}" y="18" font-size="14" font-weight="bold">'
        f"{html.escape(title)}</text>",
        f'<line x1="{margin_left}" y1="{top + plot_h}" x2="{margin_left + plot_w}" '
        f'y2="{top + plot_h}" stroke="#888"/>',
        f'<text x="{margin_left - 6}" y="{top + 10}" font-size="10" '
        f'text-anchor="end">{peak:,.0f}</text>',
    ]
    for index, label in enumerate(labels):
        x0 = margin_left + index * group_w + group_w * 0.1
        base: float = top + plot_h
        for number, (_name, values) in enumerate(series.items()):
            value = values[index]
            height = plot_h * value / peak
            x = x0 if stacked else x0 + number * bar_w
            y = base - height
            parts.append(
                f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar_w:.1f}" '
                f'height="{height:.1f}" fill="{COLORS[number % len(COLORS)]}">'
                f"<title>{html.escape(label)}: {value:,.0f}</title></rect>"
            )
            if stacked:
                base = y
        parts.append(
            f'<text x="{x0 + group_w * 0.4:.1f}" y="{top + plot_h + 16}" '
            f'font-size="10" text-anchor="middle">{html.escape(label[5:])}</text>'
        )
    for number, name in enumerate(series):
        x = margin_left + number * 130
        parts.append(
            f'<rect x="{x}" y="{CHART_HEIGHT - 14}" width="10" height="10" '
            f'fill="{COLORS[number % len(COLORS)]}"/><text x="{x + 14}" '
            f'y="{CHART_HEIGHT - 5}" font-size="11">{html.escape(name)}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def _table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in headers)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(_cell(v))}</td>" for v in row) + "</tr>"
        for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.4f}" if abs(value) < 10 else f"{value:,.1f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def render_html(report: dict[str, Any]) -> str:
    days = report["daily"]
    labels = [row["day"] for row in days]
    charts = [
        bar_chart(
            "Messages per day", labels, {"messages": [r["messages"] for r in days]}
        ),
        bar_chart(
            "Likes per day",
            labels,
            {
                "likes": [r["likes"] for r in days],
                "unlikes": [r["unlikes"] for r in days],
            },
        ),
        bar_chart(
            "View time per day (minutes)",
            labels,
            {
                "view time": [r["view_ms"] / 60_000 for r in days],
            },
        ),
        bar_chart(
            "Sentiment per day",
            labels,
            {
                "positive": [r["sentiment"]["positive"] for r in days],
                "neutral": [r["sentiment"]["neutral"] for r in days],
                "negative": [r["sentiment"]["negative"] for r in days],
            },
            stacked=True,
        ),
    ]
    daily_rows = [
        (
            r["day"],
            r["messages"],
            r["likes"],
            r["unlikes"],
            r["views"],
            round(r["view_ms"] / 1000),
            r["sentiment"]["mean_compound"],
        )
        for r in days
    ]
    run = report["run"]
    summary_rows = [
        ("events sent", report["events_sent"]),
        ("events processed", report["events_processed"]),
        ("stream versus batch differences", report["differences"]),
        ("tables versus simulator truth differences", report["truth_differences"]),
        (
            "end-to-end lag, source record to rollup, p50 / p99 (ms)",
            f"{report['lag_ms']['p50']:.1f} / {report['lag_ms']['p99']:.1f}",
        ),
        ("throughput (events/s)", f"{report['throughput_events_per_s']:,.0f}"),
        ("duration (s)", f"{report['duration_s']:.1f}"),
        ("deployment", run["deployment"]),
    ]
    sections = [
        "<h2>Summary</h2>",
        _table(("figure", "value"), summary_rows),
        "<h2>Per day</h2>",
        _table(
            (
                "day",
                "messages",
                "likes",
                "unlikes",
                "views",
                "view time (s)",
                "mean compound",
            ),
            daily_rows,
        ),
        "<div class='charts'>" + "".join(charts) + "</div>",
        "<h2>Top users by messages</h2>",
        _table(
            ("user", "messages"),
            [(u["user"], u["messages"]) for u in report["top_users"]],
        ),
        "<h2>Most liked messages</h2>",
        _table(
            ("message", "author", "likes", "body"),
            [
                (m["message_id"], m["user"], m["like_count"], m["body"])
                for m in report["most_liked"]
            ],
        ),
        "<h2>Most viewed messages</h2>",
        _table(
            ("message", "views", "view time (s)"),
            [
                (m["message_id"], m["views"], round(m["view_ms"] / 1000))
                for m in report["most_viewed"]
            ],
        ),
        "<h2>Stream versus batch</h2>",
        _differences(report),
    ]
    style = (
        "body{font-family:sans-serif;margin:2em;max-width:1100px}"
        "table{border-collapse:collapse;margin:0.5em 0 1.5em}"
        "td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}"
        "td:last-child{text-align:left}.charts svg{margin:0 1em 1em 0}"
    )
    return (
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<title>socialstream report</title><style>{style}</style></head><body>"
        f"<h1>socialstream: {html.escape(run['started_at'])}</h1>"
        + "".join(sections)
        + "</body></html>"
    )


def _differences(report: dict[str, Any]) -> str:
    listed = report.get("difference_list", [])
    if not listed:
        return "<p>No differences: the Spark backfill equals the live tables.</p>"
    rows = [
        (d["endpoint"], d["key"], d["field"], d["batch"], d["live"])
        for d in listed[:100]
    ]
    return _table(("endpoint", "key", "field", "batch", "live"), rows)

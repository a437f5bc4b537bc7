"""The data-quality report as one self-contained HTML page (``coles-loader report``).

Everything is inline: CSS, and charts drawn here as SVG. No script, font or image is
fetched, so the page opens anywhere, from a mail attachment too. Hand-built SVG rather
than a plotting library: the charts are a few bars and lines, the numbers stay text in
the page (searchable, and readable by the tests), and the project takes on no plotting
stack (matplotlib, numpy, pillow) for them.

Every value from the database goes through :func:`el` / :func:`esc`, which escape text;
only :class:`Html` built here passes unescaped.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import TYPE_CHECKING, Any

from colesbarcodes.db.runs import LOOKED_UP_OUTCOMES

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence

__all__ = ["Html", "el", "esc", "render_report"]

STORE_BARS = 30  # stores in the per-store chart (the lowest coverage); all are in the table
RUN_BARS = 30  # crawl runs in the outcomes chart

# Outcomes in the order they stack, with their colours (good to bad, then the skipped ones).
OUTCOME_COLOURS = {
    "found": "#2f855a",
    "prefilled": "#8cc9a4",
    "no_barcode": "#a0aec0",
    "not_found": "#718096",
    "invalid_barcode": "#dd8c3a",
    "failed": "#c53030",
    "recently_checked": "#90b4d8",
    "duplicate": "#d5dbe3",
}
COVERAGE_COLOUR = "#2b6cb0"
DASH = "\u2013"  # shown for a missing value
FOUND_SHARE_COLOUR = "#2f855a"


class Html(str):
    """Markup that is safe as it is (built here); any other ``str`` is escaped."""

    __slots__ = ()


def esc(value: Any) -> Html:
    if isinstance(value, Html):
        return value
    if value is None:
        return Html("")
    text = str(value)
    return Html(
        text.replace("&", "&amp;")
        .replace("<", "&lt;")
        .replace(">", "&gt;")
        .replace('"', "&quot;")
        .replace("'", "&#x27;")
    )


def _children(children: Iterable[Any]) -> Iterable[Html]:
    for child in children:
        if child is None or child is False:
            continue
        if isinstance(child, list | tuple):
            yield from _children(child)
        else:
            yield esc(child)


def el(tag: str, *children: Any, **attrs: Any) -> Html:
    """``<tag attrs>children</tag>``; ``class_`` → ``class``, ``data_x`` → ``data-x``;
    ``None``/``False`` attributes are left out, ``True`` ones written bare."""
    parts = [tag]
    for name, value in attrs.items():
        if value is None or value is False:
            continue
        key = name.rstrip("_").replace("_", "-")
        parts.append(key if value is True else f'{key}="{esc(value)}"')
    opening = "<" + " ".join(parts) + ">"
    if not children and tag in ("br", "meta", "circle", "rect", "line", "path", "polyline"):
        return Html(opening[:-1] + "/>" if tag not in ("br", "meta") else opening)
    return Html(opening + "".join(_children(children)) + f"</{tag}>")


# --- formatting ------------------------------------------------------------------------------


def count(value: Any) -> str:
    return DASH if value is None else f"{int(value):,}"


def pct(value: Any) -> str:
    return DASH if value is None else f"{float(value):.2f} %"


def when(value: str | None) -> str:
    """An ISO time as ``2026-11-24 06:00 UTC``."""
    if not value:
        return DASH
    return datetime.fromisoformat(value).strftime("%Y-%m-%d %H:%M UTC")


def duration(seconds: float | None) -> str:
    if seconds is None:
        return DASH
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{hours} h {minutes:02d} min"
    return f"{minutes} min {secs:02d} s" if minutes else f"{secs} s"


def product_link(product_id: int | None, anchors: set[int]) -> Html:
    if product_id is None:
        return Html(DASH)
    if product_id in anchors:
        return el("a", str(product_id), href=f"#product-{product_id}", class_="pid")
    return el("code", f"coles-loader inspect-product {product_id}")


def _num(x: float) -> str:
    return f"{x:.1f}"


def nice_ceiling(value: int) -> int:
    """The smallest of 2, 4, 10, 20, 40, 100, ... (even, so its half is whole) >= value."""
    ceiling = 2
    while ceiling < value:
        ceiling = ceiling * 5 // 2 if str(ceiling).startswith("4") else ceiling * 2
    return ceiling


# --- charts ----------------------------------------------------------------------------------


def coverage_bars(rows: Sequence[Mapping[str, Any]], label: str, chart_id: str, title: str) -> Html:
    """Horizontal bars of barcode coverage (0 to 100 %), one per row."""
    width, left, right, bar_h, gap, top = 760.0, 170.0, 150.0, 18.0, 8.0, 22.0
    plot = width - left - right
    height = top + len(rows) * (bar_h + gap) + 6
    parts: list[Html] = []
    for tick in (0, 25, 50, 75, 100):
        x = left + plot * tick / 100
        parts.append(
            el("line", x1=_num(x), x2=_num(x), y1=_num(top - 4), y2=_num(height), class_="grid")
        )
        parts.append(
            el("text", f"{tick} %", x=_num(x), y="12", class_="tick", text_anchor="middle")
        )
    for i, row in enumerate(rows):
        y = top + i * (bar_h + gap)
        value = float(row["barcode_pct"])
        name = str(row[label])
        parts.append(
            el(
                "g",
                el("title", f"{name}: {pct(value)} ({row['with_barcode']} of {row['products']})"),
                el(
                    "text",
                    name if len(name) <= 26 else name[:25] + "…",
                    x=_num(left - 8),
                    y=_num(y + bar_h - 4),
                    text_anchor="end",
                    class_="label",
                ),
                el(
                    "rect",
                    x=_num(left),
                    y=_num(y),
                    width=_num(plot),
                    height=_num(bar_h),
                    class_="track",
                ),
                el(
                    "rect",
                    x=_num(left),
                    y=_num(y),
                    width=_num(plot * min(value, 100.0) / 100),
                    height=_num(bar_h),
                    fill=COVERAGE_COLOUR,
                ),
                el(
                    "text",
                    el("tspan", pct(value), class_="value"),
                    el(
                        "tspan",
                        f"  {count(row['with_barcode'])} / {count(row['products'])}",
                        class_="muted",
                    ),
                    x=_num(left + plot + 8),
                    y=_num(y + bar_h - 4),
                ),
                class_="bar",
                data_label=name,
                data_value=value,
            )
        )
    return el(
        "svg",
        el("title", title),
        *parts,
        id=chart_id,
        class_="chart",
        viewBox=f"0 0 {width:.0f} {height:.0f}",
        role="img",
        aria_label=title,
        xmlns="http://www.w3.org/2000/svg",
    )


def _found_share(outcomes: Mapping[str, int]) -> float | None:
    looked_up = sum(outcomes.get(o, 0) for o in LOOKED_UP_OUTCOMES)
    return round(100.0 * outcomes.get("found", 0) / looked_up, 2) if looked_up else None


def coverage_line(timeline: Sequence[Mapping[str, Any]]) -> Html:
    """Barcode coverage at the end of each day (line), and the share of that day's lookups
    that found a barcode (dashed)."""
    width, height, left, right, top, bottom = 760.0, 260.0, 52.0, 70.0, 16.0, 40.0
    plot_w, plot_h = width - left - right, height - top - bottom
    days = [date.fromisoformat(row["day"]).toordinal() for row in timeline]
    first, last = (min(days), max(days)) if days else (0, 0)

    def x_of(day: int) -> float:
        return (
            left + plot_w / 2 if last == first else left + plot_w * (day - first) / (last - first)
        )

    def y_of(value: float) -> float:
        return top + plot_h * (1 - value / 100)

    parts: list[Html] = []
    for tick in (0, 25, 50, 75, 100):
        y = y_of(tick)
        parts.append(
            el("line", x1=_num(left), x2=_num(left + plot_w), y1=_num(y), y2=_num(y), class_="grid")
        )
        parts.append(
            el(
                "text",
                f"{tick} %",
                x=_num(left - 8),
                y=_num(y + 4),
                text_anchor="end",
                class_="tick",
            )
        )
    step = max(1, (len(timeline) + 5) // 6)
    labelled = set(range(0, len(timeline), step)) | ({len(timeline) - 1} if timeline else set())
    for i in sorted(labelled):
        parts.append(
            el(
                "text",
                timeline[i]["day"],
                x=_num(x_of(days[i])),
                y=_num(height - bottom + 18),
                text_anchor="middle",
                class_="tick",
            )
        )
    coverage = [
        (x_of(d), y_of(float(r["barcode_pct"]))) for d, r in zip(days, timeline, strict=True)
    ]
    found = [
        (x_of(d), y_of(share))
        for d, r in zip(days, timeline, strict=True)
        if (share := _found_share(r["outcomes"])) is not None
    ]
    if len(found) > 1:
        parts.append(
            el(
                "polyline",
                points=" ".join(f"{x:.1f},{y:.1f}" for x, y in found),
                class_="series found-share",
                stroke=FOUND_SHARE_COLOUR,
            )
        )
    if len(coverage) > 1:
        parts.append(
            el(
                "polyline",
                points=" ".join(f"{x:.1f},{y:.1f}" for x, y in coverage),
                class_="series coverage",
                stroke=COVERAGE_COLOUR,
            )
        )
    for (x, y), row in zip(coverage, timeline, strict=True):
        parts.append(
            el(
                "circle",
                el(
                    "title",
                    f"{row['day']}: {pct(row['barcode_pct'])} "
                    f"({count(row['with_barcode'])} of {count(row['products'])} products)",
                ),
                cx=_num(x),
                cy=_num(y),
                r="3.5",
                fill=COVERAGE_COLOUR,
                class_="point",
                data_day=row["day"],
                data_value=row["barcode_pct"],
            )
        )
    if coverage:
        x, y = coverage[-1]
        parts.append(
            el(
                "text",
                pct(timeline[-1]["barcode_pct"]),
                x=_num(x + 8),
                y=_num(y + 4),
                class_="value end-label",
            )
        )
    legend = el(
        "g",
        el(
            "line",
            x1=_num(left),
            x2=_num(left + 22),
            y1=_num(height - 6),
            y2=_num(height - 6),
            stroke=COVERAGE_COLOUR,
            class_="series",
        ),
        el(
            "text",
            "barcode coverage (all products)",
            x=_num(left + 28),
            y=_num(height - 2),
            class_="tick",
        ),
        el(
            "line",
            x1=_num(left + 250),
            x2=_num(left + 272),
            y1=_num(height - 6),
            y2=_num(height - 6),
            stroke=FOUND_SHARE_COLOUR,
            class_="series found-share",
        ),
        el(
            "text",
            "lookups that found a barcode (that day)",
            x=_num(left + 278),
            y=_num(height - 2),
            class_="tick",
        ),
        class_="legend",
    )
    return el(
        "svg",
        el("title", "Barcode coverage over time"),
        *parts,
        legend,
        id="chart-timeline",
        class_="chart",
        viewBox=f"0 0 {width:.0f} {height + 8:.0f}",
        role="img",
        aria_label="Barcode coverage over time",
        xmlns="http://www.w3.org/2000/svg",
    )


def run_bars(runs: Sequence[Mapping[str, Any]]) -> Html:
    """Stacked bars of SKUs per outcome, one bar per crawl run (oldest left); a red mark
    over runs whose monitors failed."""
    chronological = list(reversed(runs[:RUN_BARS]))
    width, height, left, right, top, bottom = 760.0, 250.0, 52.0, 16.0, 24.0, 44.0
    plot_w, plot_h = width - left - right, height - top - bottom
    peak = nice_ceiling(max((int(r["skus"]) for r in chronological), default=0))
    slot = plot_w / max(len(chronological), 1)
    bar_w = min(46.0, slot * 0.7)
    parts: list[Html] = []
    for fraction in (0, 0.5, 1):
        y = top + plot_h * (1 - fraction)
        parts.append(
            el("line", x1=_num(left), x2=_num(left + plot_w), y1=_num(y), y2=_num(y), class_="grid")
        )
        parts.append(
            el(
                "text",
                count(round(peak * fraction)),
                x=_num(left - 8),
                y=_num(y + 4),
                text_anchor="end",
                class_="tick",
            )
        )
    for i, run in enumerate(chronological):
        x = left + slot * i + (slot - bar_w) / 2
        y = top + plot_h
        segments: list[Html] = []
        outcomes = run["outcomes"]
        ordered = [o for o in OUTCOME_COLOURS if o in outcomes] + sorted(
            set(outcomes) - set(OUTCOME_COLOURS)
        )
        for outcome in ordered:
            n = int(outcomes[outcome])
            if not n:
                continue
            h = plot_h * n / peak
            y -= h
            segments.append(
                el(
                    "rect",
                    el("title", f"run {run['id']}: {n:,} {outcome}"),
                    x=_num(x),
                    y=_num(y),
                    width=_num(bar_w),
                    height=_num(max(h, 0.5)),
                    fill=OUTCOME_COLOURS.get(outcome, "#4a5568"),
                    class_="segment",
                    data_outcome=outcome,
                    data_value=n,
                )
            )
        failed = run["monitor_result"] == "failed"
        mark = (
            el(
                "text",
                "✗",
                x=_num(x + bar_w / 2),
                y=_num(y - 6),
                text_anchor="middle",
                class_="fail-mark",
            )
            if failed
            else None
        )
        label = el(
            "text",
            f"#{run['id']}",
            x=_num(x + bar_w / 2),
            y=_num(top + plot_h + 16),
            text_anchor="middle",
            class_="tick",
        )
        day = el(
            "text",
            (run["started_at"] or "")[5:10],
            x=_num(x + bar_w / 2),
            y=_num(top + plot_h + 30),
            text_anchor="middle",
            class_="tick muted",
        )
        parts.append(
            el(
                "g",
                *segments,
                mark,
                label,
                day,
                class_="run-bar",
                data_run=run["id"],
                data_skus=run["skus"],
                data_monitor=run["monitor_result"] or "",
            )
        )
    return el(
        "svg",
        el("title", "Crawl outcomes per run"),
        *parts,
        id="chart-runs",
        class_="chart",
        viewBox=f"0 0 {width:.0f} {height:.0f}",
        role="img",
        aria_label="Crawl outcomes per run",
        xmlns="http://www.w3.org/2000/svg",
    )


def outcome_legend(outcomes: Iterable[str]) -> Html:
    present = set(outcomes)
    return el(
        "ul",
        [
            el(
                "li",
                el("span", class_="swatch", style=f"background:{colour}"),
                name.replace("_", " "),
            )
            for name, colour in OUTCOME_COLOURS.items()
            if name in present
        ],
        class_="legend",
    )


# --- tables ----------------------------------------------------------------------------------


def table(
    table_id: str,
    headers: Sequence[tuple[str, str]],
    rows: Sequence[Sequence[Any]],
    empty: str,
) -> Html:
    """A table; ``headers`` are (title, kind): kind ``num`` for right-aligned figures,
    ``when`` for times and ids (kept on one line), ``""`` for text."""
    if not rows:
        return el("p", empty, class_="empty", id=table_id)
    kinds = [kind for _, kind in headers]
    return el(
        "div",
        el(
            "table",
            el(
                "thead", el("tr", [el("th", title, class_=kind or None) for title, kind in headers])
            ),
            el(
                "tbody",
                [
                    el(
                        "tr",
                        [
                            el("td", cell, class_=kind or None)
                            for cell, kind in zip(row, kinds, strict=True)
                        ],
                    )
                    for row in rows
                ],
            ),
            id=table_id,
        ),
        class_="table-wrap",
    )


def badge(result: str | None) -> Html:
    if result is None:
        return el("span", "not monitored", class_="badge off")
    return el("span", result, class_=f"badge {'ok' if result == 'passed' else 'bad'}")


def tile(key: str, title: str, value: str, note: str | None = None, tone: str = "") -> Html:
    return el(
        "div",
        el("div", title, class_="tile-title"),
        el("div", value, class_="value"),
        el("div", note, class_="note") if note else None,
        class_=f"tile {tone}".strip(),
        data_key=key,
    )


# --- the page --------------------------------------------------------------------------------


CSS = """
:root { --ink:#1a202c; --muted:#64748b; --line:#e2e8f0; --soft:#f7f9fc; --accent:#2b6cb0;
        --ok:#2f855a; --bad:#c53030; }
* { box-sizing: border-box; }
body { margin:0; font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif;
       color:var(--ink); background:#eef2f7; }
header { background:#1e3a5f; color:#fff; padding:22px 32px 18px; }
header h1 { margin:0; font-size:24px; font-weight:650; letter-spacing:.2px; }
header p { margin:4px 0 0; color:#c9d6e6; font-size:13px; }
nav { background:#fff; border-bottom:1px solid var(--line); padding:8px 32px; position:sticky; top:0; z-index:1; }
nav a { color:var(--accent); text-decoration:none; margin-right:18px; font-size:14px; }
nav a:hover { text-decoration:underline; }
main { max-width:1120px; margin:0 auto; padding:20px 24px 48px; }
section { background:#fff; border:1px solid var(--line); border-radius:10px; padding:18px 22px 20px;
          margin:0 0 18px; }
h2 { font-size:18px; margin:0 0 4px; }
h3 { font-size:15px; margin:18px 0 6px; }
.lead { color:var(--muted); margin:0 0 12px; font-size:13.5px; }
.tiles { display:grid; grid-template-columns:repeat(auto-fit,minmax(128px,1fr)); gap:12px; margin:0 0 18px; }
.tile { background:#fff; border:1px solid var(--line); border-radius:10px; padding:12px 14px; }
.tile-title { color:var(--muted); font-size:12.5px; text-transform:uppercase; letter-spacing:.4px; }
.tile .value { font-size:24px; font-weight:650; font-variant-numeric:tabular-nums; white-space:nowrap; }
.tile .note { color:var(--muted); font-size:12.5px; }
.tile.good .value { color:var(--ok); } .tile.bad .value { color:var(--bad); }
.chart { width:100%; height:auto; display:block; margin:6px 0 4px; }
.chart .grid { stroke:#e8edf3; stroke-width:1; }
.chart .tick { fill:var(--muted); font-size:11px; }
.chart .label { fill:var(--ink); font-size:12px; }
.chart .value { fill:var(--ink); font-size:12px; font-weight:600; }
.chart .muted { fill:var(--muted); font-size:11px; }
.chart .track { fill:#f1f4f8; }
.chart .series { fill:none; stroke-width:2.5; stroke-linejoin:round; stroke-linecap:round; }
.chart .found-share { stroke-dasharray:5 4; stroke-width:2; }
.chart .fail-mark { fill:var(--bad); font-size:14px; font-weight:700; }
.chart .end-label { fill:var(--accent); }
ul.legend { list-style:none; padding:0; margin:2px 0 10px; display:flex; flex-wrap:wrap; gap:6px 16px;
            font-size:12.5px; color:var(--muted); }
.swatch { display:inline-block; width:11px; height:11px; border-radius:2px; margin-right:6px; vertical-align:-1px; }
.table-wrap { overflow-x:auto; }
table { border-collapse:collapse; width:100%; font-size:13px; margin:4px 0 2px; }
th { text-align:left; font-weight:600; color:#334155; background:var(--soft); border-bottom:1px solid var(--line);
     padding:6px 9px; white-space:nowrap; }
td { padding:5px 9px; border-bottom:1px solid #eef2f6; vertical-align:top; }
tbody tr:nth-child(even) td { background:#fbfcfe; }
th.num, td.num { text-align:right; font-variant-numeric:tabular-nums; white-space:nowrap; }
td.when { white-space:nowrap; }
.code, code { font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace; font-size:12.5px; }
a.pid { color:var(--accent); font-weight:600; text-decoration:none; }
a.pid:hover { text-decoration:underline; }
.badge { display:inline-block; padding:1px 8px; border-radius:999px; font-size:12px; font-weight:600; }
.badge.ok { background:#e6f4ea; color:var(--ok); } .badge.bad { background:#fdecec; color:var(--bad); }
.badge.off { background:#edf2f7; color:var(--muted); }
.empty { color:var(--muted); font-style:italic; margin:6px 0; }
details summary { cursor:pointer; color:var(--accent); font-size:13.5px; margin:8px 0 4px; }
.cards { display:grid; grid-template-columns:repeat(auto-fill,minmax(300px,1fr)); gap:10px; }
.card { border:1px solid var(--line); border-radius:8px; padding:10px 12px; font-size:13px; }
.card:target { border-color:var(--accent); box-shadow:0 0 0 3px #bcd3ee; }
.card h4 { margin:0 0 4px; font-size:14px; }
.card dl { display:grid; grid-template-columns:auto 1fr; gap:1px 10px; margin:0 0 6px; }
.card dt { color:var(--muted); } .card dd { margin:0; }
.muted { color:var(--muted); }
footer { color:var(--muted); font-size:12px; text-align:center; padding:0 0 24px; }
"""


def _totals(report: Mapping[str, Any]) -> Html:
    totals = report["data_quality"]["totals"]
    runs = report["runs"]
    last = runs[0] if runs else None
    last_tile = (
        tile("last_run", "Last crawl", "none yet", "no run in the ledger")
        if last is None
        else tile(
            "last_run",
            "Last crawl",
            last["monitor_result"] or "not monitored",
            f"#{last['id']} · {when(last['finished_at'])}",
            "good"
            if last["monitor_result"] == "passed"
            else "bad"
            if last["monitor_result"]
            else "",
        )
    )
    return el(
        "div",
        tile("products", "Products", count(totals["products"])),
        tile("with_barcode", "With barcode", count(totals["with_barcode"])),
        tile("barcode_pct", "Barcode coverage", pct(totals["barcode_pct"]), tone="good"),
        tile("with_sku", "With SKU", count(totals["with_sku"]), pct(totals["sku_pct"])),
        tile(
            "open_conflicts",
            "Open conflicts",
            count(totals["open_conflicts"]),
            tone="bad" if totals["open_conflicts"] else "",
        ),
        tile("merges", "Merges", count(totals["merges"])),
        last_tile,
        class_="tiles",
        id="totals",
    )


def _coverage(report: Mapping[str, Any]) -> Html:
    quality = report["data_quality"]
    companies = quality["companies"]
    stores = [
        {
            **store,
            "store": f"{store['company']} {store['store_id']}"
            + (f" {store['store_name']}" if store.get("store_name") else ""),
        }
        for store in quality["stores"]
    ]
    worst = sorted(stores, key=lambda s: (s["barcode_pct"], -s["products"], s["store"]))[
        :STORE_BARS
    ]
    store_note = (
        f"all {len(stores)} stores, lowest coverage first"
        if len(stores) <= STORE_BARS
        else f"the {STORE_BARS} of {len(stores)} stores with the lowest coverage; all are in the table"
    )
    return el(
        "section",
        el("h2", "Barcode coverage"),
        el(
            "p",
            "Products with a barcode, of the products each company lists (by SKU) and each "
            "store prices. Same figures as ",
            el("code", "coles-loader data-quality"),
            ".",
            class_="lead",
        ),
        el("h3", "Per company"),
        coverage_bars(companies, "company", "chart-companies", "Barcode coverage per company")
        if companies
        else el("p", "No company SKUs yet.", class_="empty"),
        table(
            "table-companies",
            [("company", ""), ("products", "num"), ("with barcode", "num"), ("coverage", "num")],
            [
                [
                    c["company"],
                    count(c["products"]),
                    count(c["with_barcode"]),
                    pct(c["barcode_pct"]),
                ]
                for c in companies
            ],
            "No company SKUs yet.",
        ),
        el("h3", "Per store ", el("span", f"({store_note})", class_="muted")),
        coverage_bars(worst, "store", "chart-stores", "Barcode coverage per store")
        if worst
        else el("p", "No store prices yet.", class_="empty"),
        el(
            "details",
            el("summary", f"All {len(stores)} stores"),
            table(
                "table-stores",
                [
                    ("company", ""),
                    ("store", ""),
                    ("name", ""),
                    ("products", "num"),
                    ("with barcode", "num"),
                    ("coverage", "num"),
                ],
                [
                    [
                        s["company"],
                        s["store_id"],
                        s.get("store_name") or "",
                        count(s["products"]),
                        count(s["with_barcode"]),
                        pct(s["barcode_pct"]),
                    ]
                    for s in stores
                ],
                "No store prices yet.",
            ),
        )
        if stores
        else None,
        id="coverage",
    )


def _timeline(report: Mapping[str, Any]) -> Html:
    timeline = report["timeline"]
    outcome_names = [o for o in OUTCOME_COLOURS if any(o in d["outcomes"] for d in timeline)]
    return el(
        "section",
        el("h2", "Coverage over time"),
        el(
            "p",
            "Coverage at the end of each day with imports or lookups: products count from "
            "their creation, barcodes from the first lookup that found them (or from the "
            "product's import). The last point is today's coverage; earlier ones are "
            "rebuilt from the import ledger and the lookups. Dashed: the share of that day's "
            "lookups on the site that found a barcode.",
            class_="lead",
        ),
        coverage_line(timeline) if timeline else el("p", "No products yet.", class_="empty"),
        el(
            "details",
            el(
                "summary", f"Day by day ({len(timeline)} {'day' if len(timeline) == 1 else 'days'})"
            ),
            table(
                "table-timeline",
                [
                    ("day", ""),
                    ("products", "num"),
                    ("with barcode", "num"),
                    ("coverage", "num"),
                    ("files imported", "num"),
                    ("lines imported", "num"),
                    ("lookups", "num"),
                    *((name.replace("_", " "), "num") for name in outcome_names),
                ],
                [
                    [
                        d["day"],
                        count(d["products"]),
                        count(d["with_barcode"]),
                        pct(d["barcode_pct"]),
                        count(d["files_imported"]),
                        count(d["lines_imported"]),
                        count(d["lookups"]),
                        *(count(d["outcomes"].get(name, 0)) for name in outcome_names),
                    ]
                    for d in reversed(timeline)
                ],
                "No activity yet.",
            ),
        )
        if timeline
        else None,
        id="timeline",
    )


def _runs(report: Mapping[str, Any]) -> Html:
    runs = report["runs"]
    present = {o for r in runs for o in r["outcomes"]}
    columns = [o for o in OUTCOME_COLOURS if o in present] + sorted(present - set(OUTCOME_COLOURS))
    spiders = len({r["spider"] for r in runs}) > 1  # a column only when it tells runs apart
    return el(
        "section",
        el("h2", "Crawl runs"),
        el(
            "p",
            "SKUs per outcome in each barcode crawl (the run ledger, newest last in the "
            "chart; ✗ marks a run whose monitors failed). ",
            el("code", "coles-loader runs"),
            " lists them too.",
            class_="lead",
        ),
        [run_bars(runs), outcome_legend(present)] if runs else None,
        table(
            "table-runs",
            [
                ("run", "num"),
                ("started", "when"),
                ("took", "num"),
                *([("spider", "")] if spiders else []),
                ("job", "when"),
                ("monitors", ""),
                ("finish reason", ""),
                ("SKUs", "num"),
                *((c.replace("_", " "), "num") for c in columns),
            ],
            [
                [
                    r["id"],
                    when(r["started_at"]),
                    duration(r["duration_s"]),
                    *([r["spider"]] if spiders else []),
                    r["job"] or DASH,
                    badge(r["monitor_result"]),
                    r["finish_reason"],
                    count(r["skus"]),
                    *(count(r["outcomes"].get(c, 0)) for c in columns),
                ]
                for r in runs
            ],
            "No crawl run recorded yet: runs are written to the ledger when a crawl ends.",
        ),
        id="runs",
    )


def _conflicts(report: Mapping[str, Any], anchors: set[int]) -> Html:
    conflicts = report["conflicts"]
    shown = len(conflicts["rows"])
    return el(
        "section",
        el(
            "h2",
            "Open barcode conflicts ",
            el("span", f"({count(conflicts['total'])})", class_="muted"),
        ),
        el(
            "p",
            "A barcode offered for a product that holds a different one: not applied, kept "
            "for a person to decide. Newest first"
            + (
                f"; the latest {shown} of {conflicts['total']:,}."
                if shown < conflicts["total"]
                else "."
            ),
            class_="lead",
        ),
        table(
            "table-conflicts",
            [
                ("product", "num"),
                ("company", ""),
                ("SKU", "num"),
                ("holds", ""),
                ("offered", ""),
                ("reason", ""),
                ("source", ""),
                ("detected", "when"),
            ],
            [
                [
                    product_link(c["product_id"], anchors),
                    c["company"],
                    c["sku"],
                    el("span", c["existing_barcode"] or DASH, class_="code"),
                    el("span", c["offered_barcode"], class_="code"),
                    c["reason"],
                    c["source"] or DASH,
                    when(c["detected_at"]),
                ]
                for c in conflicts["rows"]
            ],
            "No open conflicts.",
        ),
        id="conflicts",
    )


def _merges(report: Mapping[str, Any], anchors: set[int]) -> Html:
    merges = report["merges"]
    return el(
        "section",
        el(
            "h2", "Recent merges ", el("span", f"({count(merges['total'])} in all)", class_="muted")
        ),
        el(
            "p",
            "Products found to be one trade item (same barcode): the merged product's SKUs, "
            "prices and history now belong to the survivor.",
            class_="lead",
        ),
        table(
            "table-merges",
            [
                ("survivor", "num"),
                ("merged", "num"),
                ("merged product", ""),
                ("reason", ""),
                ("source", ""),
                ("when", "when"),
            ],
            [
                [
                    product_link(m["survivor_id"], anchors),
                    product_link(m["merged_id"], anchors),
                    m["merged_name"] or DASH,
                    m["reason"],
                    m["source"] or DASH,
                    when(m["merged_at"]),
                ]
                for m in merges["rows"]
            ],
            "No merges yet.",
        ),
        id="merges",
    )


def _failing(report: Mapping[str, Any], anchors: set[int]) -> Html:
    failing = report["failing_skus"]
    return el(
        "section",
        el(
            "h2",
            "SKUs that keep failing ",
            el("span", f"({count(failing['total'])})", class_="muted"),
        ),
        el(
            "p",
            "SKUs whose lookup failed (no answer after retries) at least twice. Still failing "
            "first: their latest lookup failed too.",
            class_="lead",
        ),
        table(
            "table-failing",
            [
                ("company", ""),
                ("SKU", "num"),
                ("product", "num"),
                ("failures", "num"),
                ("first failed", "when"),
                ("last failed", "when"),
                ("last reason", ""),
                ("latest outcome", ""),
            ],
            [
                [
                    f["company"],
                    f["sku"],
                    product_link(f["product_id"], anchors),
                    count(f["failures"]),
                    when(f["first_failed_at"]),
                    when(f["last_failed_at"]),
                    f["last_reason"] or DASH,
                    el("span", f["latest_outcome"].replace("_", " "), class_="badge bad")
                    if f["still_failing"]
                    else f["latest_outcome"].replace("_", " "),
                ]
                for f in failing["rows"]
            ],
            "No SKU failed more than once.",
        ),
        id="failing",
    )


def _product_card(card: Mapping[str, Any], anchors: set[int]) -> Html:
    pid = card["id"]
    if "merged_into" in card:
        body: list[Any] = [
            el(
                "p",
                "Merged into ",
                product_link(card["merged_into"], anchors),
                f" ({card['merge_reason']}).",
            )
        ]
    else:
        skus = " ".join(f"{c}:{s}" for c, values in card["company_skus"].items() for s in values)
        body = [
            el(
                "dl",
                el("dt", "brand"),
                el("dd", card["brand"] or DASH),
                el("dt", "size"),
                el("dd", card["size"] or DASH),
                el("dt", "barcode"),
                el(
                    "dd",
                    el("span", card["barcode"] or "none", class_="code"),
                    f" ({card['barcode_scope']})" if card.get("barcode_scope") else None,
                ),
                el("dt", "SKUs"),
                el("dd", skus or DASH),
            )
        ]
    return el(
        "div",
        el("h4", f"#{pid} ", el("span", card.get("name") or "(no name)", class_="muted")),
        *body,
        el("code", f"coles-loader inspect-product {pid}"),
        class_="card",
        id=f"product-{pid}",
    )


def _products(report: Mapping[str, Any], anchors: set[int]) -> Html:
    cards = report["products"]
    return el(
        "section",
        el("h2", "Products named above"),
        el(
            "p",
            "Every product id in the tables links here; ",
            el("code", "coles-loader inspect-product ID"),
            " shows all there is about one.",
            class_="lead",
        ),
        el("div", [_product_card(c, anchors) for c in cards], class_="cards")
        if cards
        else el("p", "None.", class_="empty"),
        id="products",
    )


def render_report(report: Mapping[str, Any], *, source: str = "") -> str:
    """The page for a :func:`colesbarcodes.db.reports.quality_report` document."""
    anchors = {int(c["id"]) for c in report["products"]}
    generated = when(report["generated_at"])
    nav = el(
        "nav",
        [
            el("a", title, href=f"#{target}")
            for target, title in (
                ("coverage", "Coverage"),
                ("timeline", "Over time"),
                ("runs", "Crawl runs"),
                ("conflicts", "Conflicts"),
                ("merges", "Merges"),
                ("failing", "Failing SKUs"),
                ("products", "Products"),
            )
        ],
    )
    body = el(
        "body",
        el(
            "header",
            el("h1", "Barcode data quality"),
            el("p", f"Generated {generated}" + (f" from {source}" if source else "")),
        ),
        nav,
        el(
            "main",
            _totals(report),
            _coverage(report),
            _timeline(report),
            _runs(report),
            _conflicts(report, anchors),
            _merges(report, anchors),
            _failing(report, anchors),
            _products(report, anchors),
        ),
        el("footer", "colesbarcodes · coles-loader report"),
    )
    head = el(
        "head",
        el("meta", charset="utf-8"),
        el("meta", name="viewport", content="width=device-width, initial-scale=1"),
        el("title", f"Barcode data quality · {generated}"),
        el("style", Html(CSS)),
    )
    return "<!DOCTYPE html>\n" + el("html", head, body, lang="en") + "\n"

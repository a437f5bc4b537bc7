"""The report's charts, drawn as inline SVG, and the formatting of its figures.

Hand-built SVG rather than a plotting library: the charts are a few bars and lines, the
numbers stay text in the page (searchable, and readable by the tests), and the project takes
on no plotting stack (matplotlib, numpy, pillow) for them.

Each chart is markup written here with :meth:`markupsafe.Markup.format`, which escapes
every value it puts in (a company, store or outcome name is text, never markup); the page
template takes the result as it is.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import TYPE_CHECKING, NamedTuple

from markupsafe import Markup

from colesbarcodes.db.runs import LOOKED_UP_OUTCOMES

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence

    from colesbarcodes.db.report_data import CrawlRunRow, TimelineDay

__all__ = [
    "OUTCOME_COLOURS",
    "CoverageBar",
    "count",
    "coverage_bars",
    "coverage_line",
    "duration",
    "nice_ceiling",
    "outcome_order",
    "pct",
    "run_bars",
    "when",
]

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
OTHER_OUTCOME_COLOUR = "#4a5568"
COVERAGE_COLOUR = "#2b6cb0"
FOUND_SHARE_COLOUR = "#2f855a"
DASH = "\u2013"  # shown for a missing value


# --- formatting (the page's filters too) ---------------------------------------------------


def count(value: float | None) -> str:
    return DASH if value is None else f"{int(value):,}"


def pct(value: float | None) -> str:
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


def outcome_order(outcomes: Iterable[str]) -> list[str]:
    """Outcomes in the order they stack: the known ones first, then any other by name."""
    present = set(outcomes)
    return [o for o in OUTCOME_COLOURS if o in present] + sorted(present - set(OUTCOME_COLOURS))


def _num(x: float) -> str:
    return f"{x:.1f}"


def nice_ceiling(value: int) -> int:
    """The smallest of 2, 4, 10, 20, 40, 100, ... (even, so its half is whole) >= value."""
    ceiling = 2
    while ceiling < value:
        ceiling = ceiling * 5 // 2 if str(ceiling).startswith("4") else ceiling * 2
    return ceiling


# --- charts ----------------------------------------------------------------------------------


def _svg(chart_id: str, title: str, width: float, height: float, parts: Iterable[Markup]) -> Markup:
    return Markup(
        '<svg id="{id}" class="chart" viewBox="0 0 {w:.0f} {h:.0f}" role="img" '
        'aria-label="{title}" xmlns="http://www.w3.org/2000/svg"><title>{title}</title>'
        "{parts}</svg>"
    ).format(id=chart_id, title=title, w=width, h=height, parts=Markup("").join(parts))


def _grid(x1: float, x2: float, y1: float, y2: float) -> Markup:
    return Markup('<line x1="{}" x2="{}" y1="{}" y2="{}" class="grid"/>').format(
        _num(x1), _num(x2), _num(y1), _num(y2)
    )


def _tick(text: str, x: float, y: float, anchor: str) -> Markup:
    return Markup('<text x="{}" y="{}" text-anchor="{}" class="tick">{}</text>').format(
        _num(x), _num(y), anchor, text
    )


class CoverageBar(NamedTuple):
    """One bar of a coverage chart: what it stands for, and its products."""

    label: str
    barcode_pct: float
    with_barcode: int
    products: int


def coverage_bars(rows: Sequence[CoverageBar], chart_id: str, title: str) -> Markup:
    """Horizontal bars of barcode coverage (0 to 100 %), one per row."""
    width, left, right, bar_h, gap, top = 760.0, 170.0, 150.0, 18.0, 8.0, 22.0
    plot = width - left - right
    height = top + len(rows) * (bar_h + gap) + 6
    parts: list[Markup] = []
    for tick in (0, 25, 50, 75, 100):
        x = left + plot * tick / 100
        parts.append(_grid(x, x, top - 4, height))
        parts.append(_tick(f"{tick} %", x, 12, "middle"))
    for i, row in enumerate(rows):
        y = top + i * (bar_h + gap)
        value = float(row.barcode_pct)
        name = row.label
        parts.append(
            Markup(
                '<g class="bar" data-label="{name}" data-value="{value}">'
                "<title>{name}: {pct} ({with_barcode} of {products})</title>"
                '<text x="{label_x}" y="{text_y}" text-anchor="end" class="label">{short}</text>'
                '<rect x="{x}" y="{y}" width="{plot}" height="{h}" class="track"/>'
                '<rect x="{x}" y="{y}" width="{bar}" height="{h}" fill="{colour}"/>'
                '<text x="{value_x}" y="{text_y}"><tspan class="value">{pct}</tspan>'
                '<tspan class="muted">  {with_barcode_n} / {products_n}</tspan></text></g>'
            ).format(
                name=name,
                value=value,
                pct=pct(value),
                with_barcode=row.with_barcode,
                products=row.products,
                label_x=_num(left - 8),
                text_y=_num(y + bar_h - 4),
                short=name if len(name) <= 26 else name[:25] + "…",
                x=_num(left),
                y=_num(y),
                plot=_num(plot),
                h=_num(bar_h),
                bar=_num(plot * min(value, 100.0) / 100),
                colour=COVERAGE_COLOUR,
                value_x=_num(left + plot + 8),
                with_barcode_n=count(row.with_barcode),
                products_n=count(row.products),
            )
        )
    return _svg(chart_id, title, width, height, parts)


def _found_share(outcomes: Mapping[str, int]) -> float | None:
    looked_up = sum(outcomes.get(o, 0) for o in LOOKED_UP_OUTCOMES)
    return round(100.0 * outcomes.get("found", 0) / looked_up, 2) if looked_up else None


def _polyline(points: Sequence[tuple[float, float]], series: str, colour: str) -> Markup:
    return Markup('<polyline points="{}" class="series {}" stroke="{}"/>').format(
        " ".join(f"{x:.1f},{y:.1f}" for x, y in points), series, colour
    )


def coverage_line(timeline: Sequence[TimelineDay]) -> Markup:
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

    parts: list[Markup] = []
    for tick in (0, 25, 50, 75, 100):
        y = y_of(tick)
        parts.append(_grid(left, left + plot_w, y, y))
        parts.append(_tick(f"{tick} %", left - 8, y + 4, "end"))
    step = max(1, (len(timeline) + 5) // 6)
    labelled = set(range(0, len(timeline), step)) | ({len(timeline) - 1} if timeline else set())
    for i in sorted(labelled):
        parts.append(_tick(timeline[i]["day"], x_of(days[i]), height - bottom + 18, "middle"))
    coverage = [
        (x_of(d), y_of(float(r["barcode_pct"]))) for d, r in zip(days, timeline, strict=True)
    ]
    found = [
        (x_of(d), y_of(share))
        for d, r in zip(days, timeline, strict=True)
        if (share := _found_share(r["outcomes"])) is not None
    ]
    if len(found) > 1:
        parts.append(_polyline(found, "found-share", FOUND_SHARE_COLOUR))
    if len(coverage) > 1:
        parts.append(_polyline(coverage, "coverage", COVERAGE_COLOUR))
    for (x, y), row in zip(coverage, timeline, strict=True):
        parts.append(
            Markup(
                '<circle cx="{x}" cy="{y}" r="3.5" fill="{colour}" class="point" '
                'data-day="{day}" data-value="{value}"><title>{day}: {pct} '
                "({with_barcode} of {products} products)</title></circle>"
            ).format(
                x=_num(x),
                y=_num(y),
                colour=COVERAGE_COLOUR,
                day=row["day"],
                value=row["barcode_pct"],
                pct=pct(row["barcode_pct"]),
                with_barcode=count(row["with_barcode"]),
                products=count(row["products"]),
            )
        )
    if coverage:
        x, y = coverage[-1]
        parts.append(
            Markup('<text x="{}" y="{}" class="value end-label">{}</text>').format(
                _num(x + 8), _num(y + 4), pct(timeline[-1]["barcode_pct"])
            )
        )
    parts.append(
        Markup(
            '<g class="legend">'
            '<line x1="{x1}" x2="{x2}" y1="{line_y}" y2="{line_y}" stroke="{coverage}" '
            'class="series"/>'
            '<text x="{x3}" y="{text_y}" class="tick">barcode coverage (all products)</text>'
            '<line x1="{x4}" x2="{x5}" y1="{line_y}" y2="{line_y}" stroke="{found}" '
            'class="series found-share"/>'
            '<text x="{x6}" y="{text_y}" class="tick">lookups that found a barcode (that day)'
            "</text></g>"
        ).format(
            x1=_num(left),
            x2=_num(left + 22),
            x3=_num(left + 28),
            x4=_num(left + 250),
            x5=_num(left + 272),
            x6=_num(left + 278),
            line_y=_num(height - 6),
            text_y=_num(height - 2),
            coverage=COVERAGE_COLOUR,
            found=FOUND_SHARE_COLOUR,
        )
    )
    title = "Barcode coverage over time"
    return _svg("chart-timeline", title, width, height + 8, parts)


def run_bars(runs: Sequence[CrawlRunRow]) -> Markup:
    """Stacked bars of SKUs per outcome, one bar per crawl run (oldest left); a red mark
    over runs whose monitors failed."""
    chronological = list(reversed(runs[:RUN_BARS]))
    width, height, left, right, top, bottom = 760.0, 250.0, 52.0, 16.0, 24.0, 44.0
    plot_w, plot_h = width - left - right, height - top - bottom
    peak = nice_ceiling(max((int(r["skus"]) for r in chronological), default=0))
    slot = plot_w / max(len(chronological), 1)
    bar_w = min(46.0, slot * 0.7)
    parts: list[Markup] = []
    for fraction in (0, 0.5, 1):
        y = top + plot_h * (1 - fraction)
        parts.append(_grid(left, left + plot_w, y, y))
        parts.append(_tick(count(round(peak * fraction)), left - 8, y + 4, "end"))
    for i, run in enumerate(chronological):
        x = left + slot * i + (slot - bar_w) / 2
        middle = x + bar_w / 2
        y = top + plot_h
        segments: list[Markup] = []
        outcomes = run["outcomes"]
        for outcome in outcome_order(outcomes):
            n = int(outcomes[outcome])
            if not n:
                continue
            h = plot_h * n / peak
            y -= h
            segments.append(
                Markup(
                    '<rect x="{x}" y="{y}" width="{w}" height="{h}" fill="{colour}" '
                    'class="segment" data-outcome="{outcome}" data-value="{n}">'
                    "<title>run {run}: {n:,} {outcome}</title></rect>"
                ).format(
                    x=_num(x),
                    y=_num(y),
                    w=_num(bar_w),
                    h=_num(max(h, 0.5)),
                    colour=OUTCOME_COLOURS.get(outcome, OTHER_OUTCOME_COLOUR),
                    outcome=outcome,
                    n=n,
                    run=run["id"],
                )
            )
        if run["monitor_result"] == "failed":
            segments.append(
                Markup(
                    '<text x="{}" y="{}" text-anchor="middle" class="fail-mark">✗</text>'
                ).format(_num(middle), _num(y - 6))
            )
        segments.append(_tick(f"#{run['id']}", middle, top + plot_h + 16, "middle"))
        segments.append(
            Markup('<text x="{}" y="{}" text-anchor="middle" class="tick muted">{}</text>').format(
                _num(middle), _num(top + plot_h + 30), (run["started_at"] or "")[5:10]
            )
        )
        parts.append(
            Markup(
                '<g class="run-bar" data-run="{}" data-skus="{}" data-monitor="{}">{}</g>'
            ).format(run["id"], run["skus"], run["monitor_result"] or "", Markup("").join(segments))
        )
    return _svg("chart-runs", "Crawl outcomes per run", width, height, parts)

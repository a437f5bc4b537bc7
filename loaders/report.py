"""The data-quality report as one self-contained HTML page (``coles-loader report``).

The page is the Jinja2 template ``templates/report.html`` (with its macros in
``templates/_macros.html``); its CSS, ``templates/report.css``, is inlined by the template
and its charts are SVG drawn by :mod:`loaders.report_charts`. No script, font or image is
fetched, so the page opens anywhere, from a mail attachment too.

Autoescaping is on for every template: a value from the database is always text, never
markup. Only the charts pass as they are, and they escape what they hold themselves.
"""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING

from jinja2 import Environment, PackageLoader, StrictUndefined

from loaders.report_charts import (
    OUTCOME_COLOURS,
    CoverageBar,
    count,
    coverage_bars,
    coverage_line,
    duration,
    outcome_order,
    pct,
    run_bars,
    when,
)

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from pathlib import Path

    from markupsafe import Markup
    from sqlalchemy.engine import Engine

    from colesbarcodes.db.report_data import QualityReport, StoreCoverage

__all__ = ["render_report", "write_report"]

STORE_BARS = 30  # stores in the per-store chart (the lowest coverage); all are in the table


@cache
def environment() -> Environment:
    """The templates' environment: autoescaped, and strict about names they do not have."""
    env = Environment(
        loader=PackageLoader("loaders", "templates"),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    # "figure" rather than "count", which Jinja2 already has (the length of a sequence)
    env.filters.update(figure=count, pct=pct, when=when, duration=duration, skus=skus, money=money)
    return env


def money(value: float, *, signed: bool = False) -> str:
    """A price or a difference in dollars: ``$3.10``, ``+$0.20``, ``-$0.20``."""
    sign = "-" if value < 0 else "+" if signed and value > 0 else ""
    return f"{sign}${abs(value):,.2f}"


def skus(company_skus: Mapping[str, Sequence[int | str]]) -> str:
    """A product's SKUs as ``coles:101 coles:104 woolworths:W1``."""
    return " ".join(f"{c}:{s}" for c, values in company_skus.items() for s in values)


def _store_label(store: StoreCoverage) -> str:
    name = store["store_name"]
    return f"{store['company']} {store['store_id']}" + (f" {name}" if name else "")


def _charts(report: QualityReport) -> dict[str, Markup | None]:
    quality = report["data_quality"]
    companies = [
        CoverageBar(c["company"], c["barcode_pct"], c["with_barcode"], c["products"])
        for c in quality["companies"]
    ]
    stores = [
        CoverageBar(_store_label(s), s["barcode_pct"], s["with_barcode"], s["products"])
        for s in quality["stores"]
    ]
    worst = sorted(stores, key=lambda s: (s.barcode_pct, -s.products, s.label))[:STORE_BARS]
    return {
        "companies": coverage_bars(companies, "chart-companies", "Barcode coverage per company")
        if companies
        else None,
        "stores": coverage_bars(worst, "chart-stores", "Barcode coverage per store")
        if worst
        else None,
        "timeline": coverage_line(report["timeline"]) if report["timeline"] else None,
        "runs": run_bars(report["runs"]) if report["runs"] else None,
    }


def render_report(report: QualityReport, *, source: str = "") -> str:
    """The page for a :func:`colesbarcodes.db.reports.quality_report` document."""
    runs = report["runs"]
    run_outcomes = outcome_order(o for r in runs for o in r["outcomes"])
    template = environment().get_template("report.html")
    page = template.render(
        report=report,
        source=source,
        charts=_charts(report),
        store_bars=STORE_BARS,
        # the products with a card: the ids in the tables link to them
        anchors={c["id"] for c in report["products"]},
        timeline_outcomes=[
            o for o in OUTCOME_COLOURS if any(o in d["outcomes"] for d in report["timeline"])
        ],
        run_outcomes=run_outcomes,
        legend=[(o, c) for o, c in OUTCOME_COLOURS.items() if o in run_outcomes],
        spiders=len({r["spider"] for r in runs}) > 1,  # a column only when it tells runs apart
        distrusted=[r for r in runs if r["distrust_reason"]],  # a column only when there are
    )
    return page.rstrip("\n") + "\n"


def write_report(
    engine: Engine,
    out: Path,
    *,
    source: str = "",
    runs: int = 30,
    rows: int = 200,
    differences: int = 20,
) -> QualityReport:
    """Write the page for the database of ``engine`` to ``out`` (its folder created, the
    file replaced at once); the figures behind it."""
    from colesbarcodes.db import reports
    from colesbarcodes.db.engine import session_factory
    from colesbarcodes.files import atomic_file

    with session_factory(engine)() as session:
        result = reports.quality_report(session, runs=runs, rows=rows, differences=differences)
    page = render_report(result, source=source)
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_file(out) as handle:
        handle.write(page.encode())
    return result

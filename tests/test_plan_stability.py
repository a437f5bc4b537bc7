"""The import's speed does not depend on the plans PostgreSQL cached while the tables were
small: no statement is prepared on the server, so none can settle on a generic plan.

A prepared statement's generic plan is costed from the statistics of the moment it was made;
an import that prepares its per-batch look-ups while the tables are empty keeps scanning per
key as they grow (docs/product-update.md, "Plan stability").
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import text
from sqlalchemy.pool import StaticPool

from colesbarcodes.db.engine import make_engine, migrate
from colesbarcodes.inbox.claims import Inbox
from loaders.importer import ImportOptions
from loaders.update import LogProgress, run_cycle
from tests.helpers import canonical_rows, write_jsonl

if TYPE_CHECKING:
    from pathlib import Path


def test_an_import_leaves_no_prepared_statement_behind_on_postgresql(
    postgres_url: str, tmp_path: Path
) -> None:
    # One connection for everything, so that the check below sees the import's own session.
    engine = make_engine(postgres_url, poolclass=StaticPool)
    migrate(engine)
    inbox = Inbox(tmp_path / "product_inbox")
    inbox.ensure()
    for store in ("0584", "0601", "0602"):
        write_jsonl(inbox.root / f"coles-{store}.jsonl", canonical_rows(store, range(1, 401)))
    # Small batches: each statement of the import runs many more times than psycopg's
    # prepare threshold (5).
    report = run_cycle(engine, inbox, ImportOptions(batch_size=40), LogProgress(), post=False)
    assert report.lines == 1200
    with engine.connect() as conn:
        prepared = conn.execute(text("SELECT statement FROM pg_prepared_statements")).all()
        assert prepared == []
        assert conn.scalar(text("SELECT count(*) FROM company_skus")) == 400
    engine.dispose()


def test_a_second_import_into_grown_tables_plans_its_look_ups_with_the_current_sizes(
    postgres_url: str, tmp_path: Path
) -> None:
    """Even with PostgreSQL told to prefer generic plans, nothing is prepared to use one:
    a statement sent unprepared is always planned for its own values."""
    engine = make_engine(
        postgres_url,
        poolclass=StaticPool,
        connect_args={"options": "-c plan_cache_mode=force_generic_plan"},
    )
    migrate(engine)
    inbox = Inbox(tmp_path / "product_inbox")
    inbox.ensure()
    write_jsonl(inbox.root / "coles-0584.jsonl", canonical_rows("0584", range(1, 51)))
    run_cycle(engine, inbox, ImportOptions(batch_size=10), LogProgress(), post=False)
    write_jsonl(inbox.root / "coles-0601.jsonl", canonical_rows("0601", range(1, 2001)))
    run_cycle(engine, inbox, ImportOptions(batch_size=100), LogProgress(), post=False)
    with engine.connect() as conn:
        assert conn.scalar(text("SELECT current_setting('plan_cache_mode')")) == (
            "force_generic_plan"
        )
        assert conn.scalar(text("SELECT count(*) FROM pg_prepared_statements")) == 0
        assert conn.scalar(text("SELECT count(*) FROM store_prices")) == 2050
    engine.dispose()

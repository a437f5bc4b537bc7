"""The ``update`` cycle: import every inbox file, then post-process, until the inbox is empty."""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import socket
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

from colesbarcodes.db.catalog import BatchStats
from colesbarcodes.db.engine import DATABASE_ERRORS, error_detail, session_factory, with_retries
from colesbarcodes.db.maintenance import GroupStats, ReconcileStats, maintain_groups, reconcile
from colesbarcodes.db.runs import ImportRunRecord, record_import_run
from loaders.importer import FileReport, ImportOptions, import_files
from loaders.line_count import LineTotal, total_lines

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

    from sqlalchemy.engine import Engine

    from colesbarcodes.inbox.claims import Inbox

__all__ = [
    "RECOVERABLE",
    "CycleInterrupted",
    "CycleReport",
    "ImportRunLog",
    "PostProcessReport",
    "TooManyFailedCycles",
    "post_process",
    "recorded_import_run",
    "run_cycle",
    "run_cycles",
]

logger = logging.getLogger(__name__)
# The cycle loop logs as the command that runs it.
loop_logger = logging.getLogger("coles-loader")

# A cycle failing with one of these is retried after --pause (up to --max-failures in a row).
RECOVERABLE: tuple[type[Exception], ...] = (*DATABASE_ERRORS, OSError)


@dataclass
class PostProcessReport:
    reconcile: ReconcileStats
    groups: GroupStats


@dataclass
class CycleReport:
    files: list[FileReport] = field(default_factory=list)
    post_process: PostProcessReport | None = None
    seconds: float = 0.0

    @property
    def lines(self) -> int:
        return sum(f.lines for f in self.files)

    @property
    def quarantined(self) -> int:
        return sum(f.quarantined for f in self.files)

    def stats(self) -> BatchStats:
        total = BatchStats()
        for report in self.files:
            total.add(report.stats)
        return total


def post_process(engine: Engine) -> PostProcessReport:
    """Reconciliation, then group maintenance; each in its own transaction."""
    reconciled = with_retries(engine, reconcile, what="Reconciliation")
    groups = with_retries(engine, maintain_groups, what="Group maintenance")
    return PostProcessReport(reconciled, groups)


class Progress(Protocol):
    def start(self, total: LineTotal, files: int) -> None: ...
    def advance(self, lines: int) -> None: ...
    def file_done(self, report: FileReport) -> None: ...
    def close(self) -> None: ...


class LogProgress:
    """Plain log lines (for cron, scrapyd and pipes), at most one every ``every`` seconds."""

    def __init__(self, every: float = 10.0) -> None:
        self.every = every
        self.total = LineTotal(0, exact=True)
        self.done = self.files = self.files_done = 0
        self.started = self.last = time.monotonic()

    def start(self, total: LineTotal, files: int) -> None:
        self.total, self.files, self.started = total, files, time.monotonic()
        logger.info("Importing %d files, %s", files, total)

    def advance(self, lines: int) -> None:
        self.done += lines
        now = time.monotonic()
        if now - self.last >= self.every:
            self.last = now
            rate = self.done / max(now - self.started, 1e-9)
            logger.info(
                "%d/%s%d lines, %d/%d files, %.0f lines/s",
                self.done,
                "" if self.total.exact else "~",
                self.total.lines,
                self.files_done,
                self.files,
                rate,
            )

    def file_done(self, report: FileReport) -> None:
        self.files_done += 1
        logger.info(
            "Imported %s: %d lines, %d quarantined, %d skipped rows%s (%.1fs)",
            report.name,
            report.lines,
            report.quarantined,
            report.skipped,
            f" ({skipped_text(report)})" if report.skipped_by_reason else "",
            report.seconds,
        )

    def close(self) -> None:
        pass


class BarProgress(LogProgress):
    """A progress bar (lines, files, rate) for terminals."""

    def __init__(self) -> None:
        super().__init__()
        self.bar: Any = None

    def start(self, total: LineTotal, files: int) -> None:
        from tqdm import tqdm

        super().start(total, files)
        self.bar = tqdm(
            total=total.lines, unit=" lines", unit_scale=True, file=sys.stderr, dynamic_ncols=True
        )
        self.bar.set_postfix_str(f"files 0/{files}")

    def advance(self, lines: int) -> None:
        self.done += lines
        if self.bar is not None:
            if self.done > self.bar.total:  # the estimate fell short
                self.bar.total = self.done
            self.bar.update(lines)

    def file_done(self, report: FileReport) -> None:
        self.files_done += 1
        if self.bar is not None:
            self.bar.set_postfix_str(f"files {self.files_done}/{self.files}")

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def skipped_text(report: FileReport) -> str:
    """``sponsored 2, marketplace 1``: a file's skipped rows by reason, most first."""
    return ", ".join(f"{reason} {n}" for reason, n in report.skipped_by_reason.most_common())


def unknown_fields_text(report: FileReport) -> str:
    """``Barcode (did you mean barcode?), Colour``: a file's fields the loader ignored."""
    return ", ".join(
        f"{name} (did you mean {meant}?)" if meant else name
        for name, meant in report.unknown_fields.items()
    )


def _warn_unknown_fields(report: FileReport) -> None:
    if report.unknown_fields:
        logger.warning(
            "%s: fields the loader does not know were ignored: %s",
            report.name,
            unknown_fields_text(report),
        )


def run_cycle(
    engine: Engine,
    inbox: Inbox,
    options: ImportOptions,
    progress: Progress,
    *,
    post: bool = True,
    on_file: Callable[[FileReport], None] | None = None,
) -> CycleReport:
    """One cycle: the files in the inbox now (abandoned claims first), then post-processing.

    Files arriving while the cycle runs wait for the next cycle.
    """
    started = time.monotonic()
    report = CycleReport()
    todo = inbox.abandoned() + inbox.pending()
    progress.start(total_lines(todo), len(todo))

    def file_done(file_report: FileReport) -> None:
        report.files.append(file_report)
        progress.file_done(file_report)
        _warn_unknown_fields(file_report)
        if on_file is not None:
            on_file(file_report)

    try:
        import_files(engine, inbox, {p.name for p in todo}, options, progress.advance, file_done)
    finally:
        progress.close()
    if post:
        report.post_process = post_process(engine)
    report.seconds = time.monotonic() - started
    return report


@dataclass
class ImportRunLog:
    """One cycle's entry in the run ledger (``import_runs``), filled while it runs."""

    inbox: Path
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    files: list[FileReport] = field(default_factory=list)
    report: CycleReport | None = None
    finish_reason: str = "finished"

    def file_done(self, report: FileReport) -> None:
        """Pass as ``run_cycle(on_file=...)``: files done count even if the cycle fails."""
        self.files.append(report)

    def finish(self, report: CycleReport) -> None:
        self.report = report

    def record(self) -> ImportRunRecord:
        stats = BatchStats()
        for file in self.files:
            stats.add(file.stats)
        counts = {
            "files": len(self.files),
            "lines": sum(f.lines for f in self.files),
            "imported": sum(f.imported for f in self.files),
            "quarantined": sum(f.quarantined for f in self.files),
            "skipped_rows": sum(f.skipped for f in self.files),
            "barcodes_rejected": sum(f.barcodes_rejected for f in self.files),
            **{k: v for k, v in dataclasses.asdict(stats).items() if k != "lines"},
        }
        post = self.report.post_process if self.report is not None else None
        if post is not None:
            counts["reconcile_merges"] = post.reconcile.merges
            counts["product_groups"] = post.groups.groups
        return ImportRunRecord(
            node=socket.gethostname(),
            inbox=str(self.inbox),
            started_at=self.started_at,
            finished_at=datetime.now(UTC),
            finish_reason=self.finish_reason,
            files=[
                {
                    "name": f.name,
                    "lines": f.lines,
                    "imported": f.imported,
                    "quarantined": f.quarantined,
                    "skipped": f.skipped,
                    "skipped_by_reason": dict(f.skipped_by_reason.most_common()),
                    "unknown_fields": dict(f.unknown_fields),
                    "resumed_from": f.resumed_from,
                }
                for f in self.files
            ],
            counts=counts,
        )


def _write_import_run(engine: Engine, log: ImportRunLog) -> None:
    """Write the ledger row; a database that fails here never fails the import itself."""
    try:
        with session_factory(engine).begin() as session:
            record_import_run(session, log.record())
    except DATABASE_ERRORS as exc:
        detail = error_detail(exc)
        logger.warning("This import run is not in the run ledger: %s", detail)


@contextlib.contextmanager
def recorded_import_run(engine: Engine, inbox: Path) -> Iterator[ImportRunLog]:
    """Record the cycle run inside the block in ``import_runs``: when it imported at
    least one file, or failed (``failed: <error>``, with the files done before)."""
    log = ImportRunLog(inbox)
    try:
        yield log
    except KeyboardInterrupt:
        log.finish_reason = "interrupted"
        if log.files:
            _write_import_run(engine, log)
        raise
    except Exception as exc:
        log.finish_reason = f"failed: {error_detail(exc)}"
        _write_import_run(engine, log)
        raise
    if log.files:
        _write_import_run(engine, log)


class CycleInterrupted(KeyboardInterrupt):
    """Ctrl-C while a cycle ran: the file in progress resumes on the next run."""


class TooManyFailedCycles(Exception):
    """``max_failures`` cycles failed in a row; ``str()`` names the last error."""

    def __init__(self, failures: int, detail: str) -> None:
        super().__init__(f"stopping after {failures} failed cycles in a row; last error: {detail}")
        self.failures = failures
        self.detail = detail


def run_cycles(
    engine: Engine,
    inbox: Inbox,
    options: ImportOptions,
    progress: Callable[[], Progress],
    on_cycle: Callable[[CycleReport, bool], None],
    *,
    post: bool = True,
    once: bool = False,
    watch: bool = False,
    pause: float = 30.0,
    max_failures: int = 10,
) -> None:
    """Cycles while the inbox has files, each recorded in the run ledger; with ``watch``,
    forever (polling the inbox every ``pause`` seconds), with ``once``, one cycle.

    ``on_cycle(report, had_work)`` gets every cycle that ran (``had_work``: the inbox had
    files when it started). A cycle failing with a :data:`RECOVERABLE` error is logged
    and tried again after ``pause`` seconds; :class:`TooManyFailedCycles` after
    ``max_failures`` in a row. Ctrl-C during a cycle raises :class:`CycleInterrupted`.
    """
    failures = 0
    while True:
        has_work = inbox.has_work()
        if has_work or not watch:
            try:
                with recorded_import_run(engine, inbox.root) as run:
                    report = run_cycle(
                        engine, inbox, options, progress(), post=post, on_file=run.file_done
                    )
                    run.finish(report)
            except KeyboardInterrupt:
                raise CycleInterrupted from None
            except RECOVERABLE as exc:
                failures += 1
                detail = error_detail(exc)
                loop_logger.error(
                    "Cycle failed (%d/%d in a row): %s", failures, max_failures, detail
                )
                loop_logger.debug("Cycle failure", exc_info=True)
                if failures >= max_failures:
                    raise TooManyFailedCycles(failures, detail) from None
                time.sleep(pause)
                continue
            failures = 0
            on_cycle(report, has_work)
        if once:
            return
        if inbox.has_work() or watch:
            time.sleep(pause)
        else:
            return

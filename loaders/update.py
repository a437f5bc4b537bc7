"""The ``update`` cycle: import every inbox file, then post-process, until the inbox is empty."""

from __future__ import annotations

import logging
import sys
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from colesbarcodes.db.catalog import BatchStats
from colesbarcodes.db.engine import session_factory
from colesbarcodes.db.maintenance import GroupStats, ReconcileStats, maintain_groups, reconcile
from loaders.importer import FileReport, ImportOptions, count_lines, import_file

if TYPE_CHECKING:
    from collections.abc import Callable

    from sqlalchemy.engine import Engine

    from colesbarcodes.inbox import Inbox

__all__ = ["CycleReport", "PostProcessReport", "post_process", "run_cycle"]

logger = logging.getLogger(__name__)


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
    factory = session_factory(engine)
    with factory.begin() as session:
        reconciled = reconcile(session)
    with factory.begin() as session:
        groups = maintain_groups(session)
    return PostProcessReport(reconciled, groups)


class Progress(Protocol):
    def start(self, total_lines: int, files: int) -> None: ...
    def advance(self, lines: int) -> None: ...
    def file_done(self, report: FileReport) -> None: ...
    def close(self) -> None: ...


class LogProgress:
    """Plain log lines (for cron, scrapyd and pipes), at most one every ``every`` seconds."""

    def __init__(self, every: float = 10.0) -> None:
        self.every = every
        self.total = self.done = self.files = self.files_done = 0
        self.started = self.last = time.monotonic()

    def start(self, total_lines: int, files: int) -> None:
        self.total, self.files, self.started = total_lines, files, time.monotonic()
        logger.info("Importing %d files, %d lines", files, total_lines)

    def advance(self, lines: int) -> None:
        self.done += lines
        now = time.monotonic()
        if now - self.last >= self.every:
            self.last = now
            rate = self.done / max(now - self.started, 1e-9)
            logger.info(
                "%d/%d lines, %d/%d files, %.0f lines/s",
                self.done,
                self.total,
                self.files_done,
                self.files,
                rate,
            )

    def file_done(self, report: FileReport) -> None:
        self.files_done += 1
        logger.info(
            "Imported %s: %d lines, %d quarantined, %d skipped rows (%.1fs)",
            report.name,
            report.lines,
            report.quarantined,
            report.skipped,
            report.seconds,
        )

    def close(self) -> None:
        pass


class BarProgress(LogProgress):
    """A progress bar (lines, files, rate) for terminals."""

    def __init__(self) -> None:
        super().__init__()
        self.bar: Any = None

    def start(self, total_lines: int, files: int) -> None:
        from tqdm import tqdm

        super().start(total_lines, files)
        self.bar = tqdm(
            total=total_lines, unit=" lines", unit_scale=True, file=sys.stderr, dynamic_ncols=True
        )
        self.bar.set_postfix_str(f"files 0/{files}")

    def advance(self, lines: int) -> None:
        self.done += lines
        if self.bar is not None:
            self.bar.update(lines)

    def file_done(self, report: FileReport) -> None:
        self.files_done += 1
        if self.bar is not None:
            self.bar.set_postfix_str(f"files {self.files_done}/{self.files}")

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


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
    progress.start(sum(count_lines(p) for p in todo), len(todo))
    try:
        taken = {p.name for p in todo}
        while True:
            claimed = inbox.claim_next(only=taken)
            if claimed is None:
                break
            taken.discard(claimed.path.name)
            taken.discard(claimed.original_name)
            file_report = import_file(engine, inbox, claimed, options, progress.advance)
            report.files.append(file_report)
            progress.file_done(file_report)
            if on_file is not None:
                on_file(file_report)
    finally:
        progress.close()
    if post:
        report.post_process = post_process(engine)
    report.seconds = time.monotonic() - started
    return report

"""The record of each imported file (``imported_files``): how far it got, committed with
every batch.

Because a batch's data and the record's ``lines_done`` commit in one transaction, a run
that dies anywhere resumes exactly after the last committed batch: no line is imported
twice and none is skipped.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import insert, select, update

from colesbarcodes.db.batch_write import BatchWriter
from colesbarcodes.db.models import ImportedFile, QuarantinedLine, utcnow

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

    from sqlalchemy.orm import Session

__all__ = [
    "FileProgress",
    "Quarantined",
    "finish",
    "open_file",
    "quarantined_lines",
    "record_batch",
]

_RAW_KEEP = 10_000  # characters of a bad line kept in the database (the file is archived)
_QUARANTINED_COLUMNS = ("file_id", "line_no", "reason", "imported", "raw")


@dataclass
class FileProgress:
    file_id: int
    lines_done: int
    done: bool


@dataclass
class Quarantined:
    """A line for the quarantine: not imported, or imported without some of it (its
    invalid barcode), or ``partly``: some rows of a line of several were not imported."""

    line_no: int
    reason: str
    raw: bytes | None
    imported: bool = False
    partly: bool = False


def open_file(session: Session, inbox: str, claim_name: str, original_name: str) -> FileProgress:
    """The record of a claimed file, created on first sight."""
    row = session.execute(
        select(ImportedFile.id, ImportedFile.lines_done, ImportedFile.status).where(
            ImportedFile.claim_name == claim_name
        )
    ).first()
    if row is None:
        file_id = session.execute(
            insert(ImportedFile)
            .values(inbox=inbox, claim_name=claim_name, original_name=original_name)
            .returning(ImportedFile.id)
        ).scalar_one()
        return FileProgress(file_id, 0, False)
    return FileProgress(row.id, row.lines_done, row.status == "done")


def record_batch(
    session: Session,
    file_id: int,
    *,
    lines_done: int,
    imported: int,
    skipped: int,
    quarantined: Sequence[Quarantined],
) -> None:
    """Advance the file's record and store the batch's quarantined lines (same transaction)."""
    if quarantined:
        rows = [
            (
                file_id,
                q.line_no,
                q.reason,
                q.imported,
                None
                if q.raw is None
                else q.raw[:_RAW_KEEP].decode("utf-8", "replace").replace("\x00", "\\u0000"),
            )
            for q in quarantined
        ]
        # COPY on PostgreSQL: a fourth of the time of as many INSERTs through the ORM (a
        # file of hostile lines quarantines hundreds a batch)
        BatchWriter(session).copy_rows(
            QuarantinedLine.__table__,  # type: ignore[arg-type]
            _QUARANTINED_COLUMNS,
            rows,
        )
    bad_lines = sum(1 for q in quarantined if not q.imported or q.partly)
    session.execute(
        update(ImportedFile)
        .where(ImportedFile.id == file_id)
        .values(
            lines_done=lines_done,
            lines_imported=ImportedFile.lines_imported + imported,
            lines_quarantined=ImportedFile.lines_quarantined + bad_lines,
            rows_skipped=ImportedFile.rows_skipped + skipped,
            barcodes_rejected=ImportedFile.barcodes_rejected + (len(quarantined) - bad_lines),
        )
    )


def finish(session: Session, file_id: int) -> None:
    session.execute(
        update(ImportedFile)
        .where(ImportedFile.id == file_id)
        .values(status="done", finished_at=utcnow())
    )


def file_counts(session: Session, file_id: int) -> dict[str, int]:
    row = session.execute(
        select(
            ImportedFile.lines_imported,
            ImportedFile.lines_quarantined,
            ImportedFile.rows_skipped,
            ImportedFile.barcodes_rejected,
        ).where(ImportedFile.id == file_id)
    ).one()
    return {
        "imported": row[0],
        "quarantined": row[1],
        "skipped": row[2],
        "barcodes_rejected": row[3],
    }


def quarantined_lines(session: Session, file_id: int) -> Iterator[QuarantinedLine]:
    yield from session.scalars(
        select(QuarantinedLine)
        .where(QuarantinedLine.file_id == file_id)
        .order_by(QuarantinedLine.line_no)
        .execution_options(yield_per=1000)
    )

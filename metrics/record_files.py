"""Read the JSONL files to evaluate and pair their records by id.

A line that cannot be used (not JSON, not UTF-8, no output, a repeated id) becomes a `BadLine`
with file and line number; the rest of the file is still read. Only an unreadable file stops.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError

from aidsafe.state.evaluation import EvaluatedRecord


class RecordsFileError(OSError):
    """The file itself cannot be read."""


@dataclass(frozen=True)
class BadLine:
    file: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.message}"


def _problem(exc: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(p) for p in err['loc']) or 'record'}: {err['msg'].removeprefix('Value error, ')}"
        for err in exc.errors()
    )


def read_records(path: str | Path, limit: int | None = None) -> tuple[list[EvaluatedRecord], list[BadLine]]:
    """The first `limit` usable records of a JSONL file, and the lines that could not be used."""
    try:
        raw_lines = Path(path).read_bytes().splitlines()
    except OSError as exc:
        raise RecordsFileError(f"{path}: cannot read ({exc.strerror})") from exc
    records: list[EvaluatedRecord] = []
    bad: list[BadLine] = []
    first_line_of: dict[str, int] = {}
    for number, raw in enumerate(raw_lines, 1):
        if limit is not None and len(records) >= limit:
            break
        if not raw.strip():
            continue
        try:
            record = EvaluatedRecord.model_validate(json.loads(raw.decode("utf-8")))
        except UnicodeDecodeError as exc:
            bad.append(BadLine(str(path), number, f"not UTF-8 ({exc.reason} at byte {exc.start})"))
            continue
        except json.JSONDecodeError as exc:
            bad.append(BadLine(str(path), number, f"not JSON ({exc.msg}, column {exc.colno})"))
            continue
        except ValidationError as exc:
            bad.append(BadLine(str(path), number, _problem(exc)))
            continue
        if record.id in first_line_of:
            bad.append(BadLine(str(path), number, f"id {record.id!r} repeats line {first_line_of[record.id]}"))
            continue
        first_line_of[record.id] = number
        records.append(record)
    return records, bad


@dataclass(frozen=True)
class RecordPair:
    """One prompt's records: from the run file, the baseline file, or both (compared pairwise)."""

    id: str
    run: EvaluatedRecord | None
    baseline: EvaluatedRecord | None


def pair_records(run: list[EvaluatedRecord], baseline: list[EvaluatedRecord]) -> list[RecordPair]:
    """Pair by id, in the run file's order; baseline records without a run record come last."""
    baseline_by_id = {r.id: r for r in baseline}
    run_ids = {r.id for r in run}
    return [RecordPair(r.id, r, baseline_by_id.get(r.id)) for r in run] + [
        RecordPair(r.id, None, r) for r in baseline if r.id not in run_ids
    ]

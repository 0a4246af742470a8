"""Read labels files (`state/labels.py`): the labels that count, and every problem by file:line.

A line that cannot be used (not JSON, a missing field, an unknown rubric, a score out of range, an
id not among the evaluated records) is named and skipped; the rest of the file still counts. A
person who scored one (id, rubric) twice with different scores is not an error (the latest
counts) but is named too, as `relabelled`, so a reviewer can see a change of mind or a clash of
two tools writing under one name. People who disagree with each other are not a problem of the
file: that is what the agreement measures.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import ValidationError

from aidsafe.metrics.record_files import RecordsFileError
from aidsafe.state.labels import Label

ProblemKind = Literal["malformed", "unknown rubric", "out of range", "unknown id", "relabelled"]


@dataclass(frozen=True)
class LabelProblem:
    file: str
    line: int
    kind: ProblemKind
    message: str

    @property
    def skipped(self) -> bool:
        """The line was left out; `relabelled` lines only say which of two scores counts."""
        return self.kind != "relabelled"

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.kind}: {self.message}"


@dataclass(frozen=True)
class LabelsRead:
    labels: list[Label]
    """The latest label per (id, rubric, annotator), in the order of the lines that hold them."""
    problems: list[LabelProblem]


def _invalid(exc: ValidationError) -> tuple[ProblemKind, str]:
    error = exc.errors()[0]
    message = error["msg"].removeprefix("Value error, ")
    if error["loc"] == ("rubric",) and error["type"] == "value_error":
        return "unknown rubric", message
    if error["loc"] == () and error["type"] == "value_error":
        return "out of range", message
    where = ".".join(str(p) for p in error["loc"]) or "line"
    return "malformed", f"{where}: {message}"


def read_labels(paths: Sequence[str | Path], known_ids: Collection[str] | None = None) -> LabelsRead:
    """Every usable label of `paths` (latest per (id, rubric, annotator): by `time`, then by file
    and line order) and the problems. `known_ids`: the evaluated records; other ids are skipped.
    `RecordsFileError` when a file cannot be read."""
    found: list[tuple[Label, str, int]] = []
    problems: list[LabelProblem] = []
    for path in paths:
        try:
            raw_lines = Path(path).read_bytes().splitlines()
        except OSError as exc:
            raise RecordsFileError(f"{path}: cannot read ({exc.strerror})") from exc
        for number, raw in enumerate(raw_lines, 1):
            if not raw.strip():
                continue
            try:
                label = Label.model_validate(json.loads(raw.decode("utf-8")))
            except (UnicodeDecodeError, json.JSONDecodeError) as exc:
                problems.append(LabelProblem(str(path), number, "malformed", f"not a JSON line ({exc})"))
                continue
            except ValidationError as exc:
                problems.append(LabelProblem(str(path), number, *_invalid(exc)))
                continue
            if known_ids is not None and label.id not in known_ids:
                message = f"id {label.id!r} is not among the evaluated records"
                problems.append(LabelProblem(str(path), number, "unknown id", message))
                continue
            found.append((label, str(path), number))
    groups: dict[tuple[str, str, str], list[int]] = {}
    for i in sorted(range(len(found)), key=lambda i: (found[i][0].time, i)):
        groups.setdefault(found[i][0].key, []).append(i)
    for (record_id, rubric, annotator), indices in groups.items():
        label, file, line = found[indices[-1]]
        if len({found[i][0].score for i in indices}) > 1:
            earlier = ", ".join(
                f"{found[i][0].score} on line {found[i][2]}" + ("" if found[i][1] == file else f" of {found[i][1]}")
                for i in indices[:-1]
            )
            message = (
                f"{annotator!r} scored {record_id!r} / {rubric} {label.score} here and earlier {earlier}; "
                f"the latest by time counts: {label.score}"
            )
            problems.append(LabelProblem(file, line, "relabelled", message))
    files = [str(path) for path in paths]
    problems.sort(key=lambda p: (files.index(p.file), p.line))
    return LabelsRead([found[i][0] for i in sorted(indices[-1] for indices in groups.values())], problems)

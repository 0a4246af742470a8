"""Read prompts from JSONL, a JSON array, CSV or a Hugging Face `save_to_disk` folder.

Readers stream (JSONL, CSV and Arrow folders are never loaded whole), so a batch of millions of
prompts costs little memory. A bad row does not stop the others: it becomes an `InputProblem` that
names the file and line, goes to the errors file, and makes the exit code non-zero.
"""

from __future__ import annotations

import csv
import hashlib
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DEFAULT_MAX_PROMPT_CHARS = 16_000
"""About 4,000 tokens: past that a prompt no longer fits the embedded model's context beside the
policies. Raise it with `--max-prompt-chars` for servers with long contexts."""


@dataclass(frozen=True)
class Sample:
    id: str
    prompt: str
    metadata: dict[str, Any] = field(default_factory=dict)
    where: str = ""
    """`file:line` (or `folder:row`), for messages."""

    def checkpoint_key(self) -> str:
        """What the sample's result depends on besides the run's settings: part of its checkpoint
        thread id, so a changed input never resumes a thread made from another."""
        return content_id(self.prompt)


@dataclass(frozen=True)
class InputProblem:
    """A row, or a whole file, that cannot become a sample."""

    where: str
    message: str
    id: str | None = None
    prompt: str | None = None

    def __str__(self) -> str:
        return f"{self.where}: {self.message}"


class InputFileError(Exception):
    """A whole input file is unusable (missing, unreadable, unknown format or column)."""

    def __init__(self, where: Path | str, message: str) -> None:
        super().__init__(f"{where}: {message}")
        self.where, self.message = str(where), message


def content_id(prompt: str) -> str:
    """Stable id of a prompt without an `id` column: the same text gets the same id in every run."""
    return hashlib.sha256(prompt.encode("utf-8")).hexdigest()[:16]


Row = tuple[str, dict[str, Any] | InputProblem]
"""(where, row) as a reader yields it; a reader reports an undecodable row as a problem."""


def _jsonl_rows(path: Path) -> Iterator[Row]:
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            where = f"{path}:{number}"
            if not raw.strip():
                continue
            try:
                row = json.loads(raw.rstrip(b"\r\n").decode("utf-8"))
            except UnicodeDecodeError as exc:
                yield where, InputProblem(where, f"not UTF-8 (byte {raw[exc.start]:#04x} at column {exc.start + 1})")
                continue
            except json.JSONDecodeError as exc:
                yield where, InputProblem(where, f"malformed JSON: {exc.msg} at column {exc.colno}")
                continue
            yield where, row if isinstance(row, dict) else InputProblem(where, "a line must be a JSON object")


def _json_array_rows(path: Path) -> Iterator[Row]:
    """A JSON array is parsed whole (JSON has no streaming form in the standard library): use JSONL for
    very large inputs."""
    try:
        data = json.loads(path.read_bytes().decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise InputFileError(path, f"not UTF-8 (byte offset {exc.start})") from exc
    except json.JSONDecodeError as exc:
        raise InputFileError(f"{path}:{exc.lineno}", f"malformed JSON: {exc.msg} at column {exc.colno}") from exc
    if not isinstance(data, list):
        raise InputFileError(path, "a .json input must be an array of objects")
    for index, row in enumerate(data):
        where = f"{path}[{index}]"
        yield where, row if isinstance(row, dict) else InputProblem(where, "an array item must be a JSON object")


def _csv_rows(path: Path, prompt_field: str) -> Iterator[Row]:
    # surrogateescape keeps undecodable bytes as lone surrogates, so one bad row is reported and skipped
    with path.open(encoding="utf-8", errors="surrogateescape", newline="") as handle:
        reader = csv.DictReader(handle)
        if reader.fieldnames is None or prompt_field not in reader.fieldnames:
            raise _unknown_column(path, prompt_field, reader.fieldnames or [])
        line = 2
        for row in reader:
            where, line = f"{path}:{line}", reader.line_num + 1
            bad = next((k for k, v in row.items() if isinstance(v, str) and _has_surrogates(v)), None)
            if bad is not None:
                yield where, InputProblem(where, f"not UTF-8 (in column {bad!r})")
                continue
            yield where, {k: v for k, v in row.items() if k is not None}


def _has_surrogates(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _dataset_rows(path: Path, prompt_field: str) -> Iterator[Row]:
    """A folder written by `Dataset.save_to_disk`; rows are read from the memory-mapped Arrow files."""
    import datasets

    try:
        loaded = datasets.load_from_disk(str(path))
    except (FileNotFoundError, ValueError, OSError) as exc:
        raise InputFileError(path, f"not a Hugging Face dataset folder: {exc}") from exc
    if isinstance(loaded, datasets.DatasetDict):
        if len(loaded) != 1 and "train" not in loaded:
            raise InputFileError(path, f"several splits {sorted(loaded)} and none is 'train'")
        loaded = loaded["train"] if "train" in loaded else next(iter(loaded.values()))
    if prompt_field not in loaded.column_names:
        raise _unknown_column(path, prompt_field, loaded.column_names)
    for index, row in enumerate(loaded):
        yield f"{path}:row {index}", dict(row)


def _unknown_column(path: Path, prompt_field: str, columns: Iterable[str]) -> InputFileError:
    return InputFileError(
        path, f"no column {prompt_field!r} (columns: {', '.join(columns) or 'none'}); choose one with --prompt-field"
    )


def _rows(path: Path, prompt_field: str) -> Iterator[Row]:
    if path.is_dir():
        return _dataset_rows(path, prompt_field)
    if not path.is_file():
        raise InputFileError(path, "no such file or folder")
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".ndjson"):
        return _jsonl_rows(path)
    if suffix == ".json":
        return _json_array_rows(path)
    if suffix == ".csv":
        return _csv_rows(path, prompt_field)
    raise InputFileError(path, f"unknown input format {suffix!r}; use .jsonl, .json, .csv or a dataset folder")


def _sample(where: str, row: dict[str, Any], prompt_field: str, max_prompt_chars: int) -> Sample | InputProblem:
    raw_id = row.get("id")
    given_id = None if raw_id is None or raw_id == "" else str(raw_id)
    if prompt_field not in row:
        fields = ", ".join(row) or "none"
        return InputProblem(where, f"no field {prompt_field!r} (fields: {fields})", given_id)
    prompt = row[prompt_field]
    if not isinstance(prompt, str):
        return InputProblem(where, f"{prompt_field!r} must be text, got {type(prompt).__name__}", given_id)
    if not prompt.strip():
        return InputProblem(where, "empty prompt", given_id, prompt)
    if len(prompt) > max_prompt_chars:
        return InputProblem(
            where,
            f"prompt has {len(prompt):,} characters, over the limit of {max_prompt_chars:,} (--max-prompt-chars)",
            given_id,
            prompt[:200],
        )
    metadata = {k: v for k, v in row.items() if k not in ("id", prompt_field)}
    return Sample(given_id or content_id(prompt), prompt, metadata, where)


def read_samples(
    paths: Iterable[str | Path],
    *,
    prompt_field: str = "prompt",
    max_prompt_chars: int = DEFAULT_MAX_PROMPT_CHARS,
    limit: int | None = None,
) -> Iterator[Sample | InputProblem]:
    """Samples and problems in input order; stops after `limit` samples.

    Duplicate ids: the first occurrence wins. A later row with the same id and the same prompt is
    dropped silently (datasets often repeat prompts); the same id with a different prompt is a
    problem, because one of the two would otherwise be lost without a word.
    """
    seen: dict[str, tuple[str, str]] = {}  # id -> (prompt hash, where)
    taken = 0
    for path in paths:
        try:
            rows = _rows(Path(path), prompt_field)
            for where, row in rows:
                item = row if isinstance(row, InputProblem) else _sample(where, row, prompt_field, max_prompt_chars)
                if isinstance(item, Sample):
                    digest = content_id(item.prompt)
                    first = seen.setdefault(item.id, (digest, where))
                    if first[1] != where:
                        if first[0] == digest:
                            continue
                        item = InputProblem(where, f"duplicate id {item.id!r} (first at {first[1]})", item.id)
                    else:
                        taken += 1
                yield item
                if limit is not None and taken >= limit:
                    return
        except InputFileError as exc:
            yield InputProblem(exc.where, exc.message)
        except OSError as exc:
            yield InputProblem(str(path), f"cannot read: {exc.strerror or exc}")

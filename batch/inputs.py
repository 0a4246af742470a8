"""Read prompts from JSONL, a JSON array, CSV or a Hugging Face `save_to_disk` folder.

Readers stream (JSONL, CSV and Arrow folders are never loaded whole), so a batch of millions of
prompts costs little memory. A bad row does not stop the others: it becomes an `InputProblem` that
names the file and line, goes to the errors file, and makes the exit code non-zero.
"""

from __future__ import annotations

import csv
import hashlib
import json
import unicodedata
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pydantic

from aidsafe.nodes.context import DEFAULT_MAX_PROMPT_CHARS, AtLeastOne, Name

CSV_FIELD_LIMIT = 2**31 - 1
"""The csv module refuses fields over 131,072 characters by default, which aborted a whole batch
for one long prompt; the prompt limit (`--max-prompt-chars`) is what decides, per row."""
csv.field_size_limit(max(csv.field_size_limit(), CSV_FIELD_LIMIT))


@pydantic.dataclasses.dataclass(kw_only=True)
class ReadOptions:
    """How inputs are read; each annotation is the option's valid range (the CLI's flags check it)."""

    prompt_field: Name = "prompt"
    max_prompt_chars: AtLeastOne = DEFAULT_MAX_PROMPT_CHARS
    limit: AtLeastOne | None = None


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


def first_problem(exc: pydantic.ValidationError) -> str:
    """The first thing a validation refused, as `where: what` (what a line's message names)."""
    first = exc.errors()[0]
    where = ".".join(str(part) for part in first["loc"])
    return f"{where}: {first['msg']}" if where else str(first["msg"])


def content_id(prompt: str) -> str:
    """Stable id of a prompt without an `id` column: the same text gets the same id in every run."""
    return hashlib.sha256(prompt.encode("utf-8")).hexdigest()[:16]


Row = tuple[str, dict[str, Any] | InputProblem]
"""(where, row) as a reader yields it; a reader reports an undecodable row as a problem."""


BOM = b"\xef\xbb\xbf"


def _jsonl_rows(path: Path) -> Iterator[Row]:
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            where = f"{path}:{number}"
            if number == 1:
                raw = raw.removeprefix(BOM)  # editors on Windows start UTF-8 files with one
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
            except RecursionError:
                yield where, InputProblem(where, "JSON nested too deeply")
                continue
            yield where, row if isinstance(row, dict) else InputProblem(where, "a line must be a JSON object")


def _json_array_rows(path: Path) -> Iterator[Row]:
    """A JSON array is parsed whole (JSON has no streaming form in the standard library): use JSONL for
    very large inputs."""
    try:
        data = json.loads(path.read_bytes().removeprefix(BOM).decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise InputFileError(path, f"not UTF-8 (byte offset {exc.start})") from exc
    except json.JSONDecodeError as exc:
        raise InputFileError(f"{path}:{exc.lineno}", f"malformed JSON: {exc.msg} at column {exc.colno}") from exc
    except RecursionError:
        raise InputFileError(path, "JSON nested too deeply") from None
    if not isinstance(data, list):
        raise InputFileError(path, "a .json input must be an array of objects")
    for index, row in enumerate(data):
        where = f"{path}[{index}]"
        yield where, row if isinstance(row, dict) else InputProblem(where, "an array item must be a JSON object")


def _csv_rows(path: Path, prompt_field: str) -> Iterator[Row]:
    # surrogateescape keeps undecodable bytes as lone surrogates, so one bad row is reported and
    # skipped; utf-8-sig drops a byte-order mark before the header
    with path.open(encoding="utf-8-sig", errors="surrogateescape", newline="") as handle:
        reader = csv.reader(handle)
        try:
            header = next(reader, None)
        except csv.Error as exc:
            raise InputFileError(f"{path}:1", f"malformed CSV header: {exc}") from None
        if header is None or prompt_field not in header:
            raise _unknown_column(path, prompt_field, header or [])
        if _has_surrogates("".join(header)):
            raise InputFileError(f"{path}:1", "not UTF-8 (in the header)")
        line = 2
        while True:
            try:
                cells = next(reader, None)
            except csv.Error as exc:
                yield f"{path}:{line}", InputProblem(f"{path}:{line}", f"malformed CSV: {exc}")
                line = reader.line_num + 1
                continue
            if cells is None:
                return
            where, line = f"{path}:{line}", reader.line_num + 1
            if not cells:
                continue
            if len(cells) != len(header):
                message = f"has {len(cells)} fields but the header has {len(header)}" + (
                    " (a comma in an unquoted field? quote it)" if len(cells) > len(header) else ""
                )
                yield where, InputProblem(where, message)
                continue
            bad = next((name for name, value in zip(header, cells, strict=True) if _has_surrogates(value)), None)
            if bad is not None:
                yield where, InputProblem(where, f"not UTF-8 (in column {bad!r})")
                continue
            yield where, dict(zip(header, cells, strict=True))


def _has_surrogates(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def text_problem(value: Any, where: str = "") -> str | None:
    """What makes a row's text unusable, naming the field: a lone surrogate (a JSON `\\ud800`
    escape, not valid Unicode: it cannot be written to any UTF-8 file) or a NUL character (which
    no text column of a checkpoint store, nor most tokenizers, accept)."""
    if isinstance(value, str):
        if _has_surrogates(value):
            return f"{where or 'text'} holds a lone surrogate (an unpaired \\ud800-\\udfff escape): not valid Unicode"
        if "\x00" in value:
            return f"{where or 'text'} holds a NUL character"
        return None
    items: Iterable[tuple[Any, Any]] = (
        value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    )
    for key, item in items:
        name = f"{where}.{key}" if where else repr(key) if isinstance(key, str) else f"[{key}]"
        if isinstance(key, str) and (problem := text_problem(key, f"a field name in {where or 'the row'}")):
            return problem
        if problem := text_problem(item, name):
            return problem
    return None


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
    try:
        path.stat()
    except FileNotFoundError:
        message = "a symbolic link to a missing file" if path.is_symlink() else "no such file or folder"
        raise InputFileError(path, message) from None
    except OSError as exc:
        raise InputFileError(path, f"cannot read: {exc.strerror or exc}") from None
    if path.is_dir():
        return _dataset_rows(path, prompt_field)
    if not path.is_file():
        raise InputFileError(path, "not a regular file (a device, pipe or socket)")
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".ndjson"):
        return _jsonl_rows(path)
    if suffix == ".json":
        return _json_array_rows(path)
    if suffix == ".csv":
        return _csv_rows(path, prompt_field)
    raise InputFileError(path, f"unknown input format {suffix!r}; use .jsonl, .json, .csv or a dataset folder")


def prompt_problem(prompt: str, max_prompt_chars: int) -> str | None:
    """The prompt rules of every command and of `aidsafe serve`: not blank, at most the limit."""
    if not prompt.strip():
        return "empty prompt"
    if len(prompt) > max_prompt_chars:
        return f"prompt has {len(prompt):,} characters, over the limit of {max_prompt_chars:,} (--max-prompt-chars)"
    return None


def _kind(value: Any) -> str:
    """A JSON value's type in the user's words, for messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true/false"
    return {int: "a number", float: "a number", list: "a list", dict: "an object"}.get(
        type(value), type(value).__name__
    )


def _id_problem(raw_id: Any) -> str | None:
    """Why the row's id cannot be one: only text and whole numbers come back the same from the
    output (an object or a list would be written as its Python repr), and a line break in an id
    would split every log line that names it."""
    if isinstance(raw_id, bool) or not isinstance(raw_id, str | int):
        return f"'id' must be text or a whole number, got {_kind(raw_id)}"
    if any(unicodedata.category(ch) == "Cc" for ch in str(raw_id)):
        return f"'id' {str(raw_id)!r} holds a line break or another control character"
    return None


def _sample(where: str, row: dict[str, Any], prompt_field: str, max_prompt_chars: int) -> Sample | InputProblem:
    if problem := text_problem(row):
        return InputProblem(where, problem)
    raw_id = row.get("id")
    given_id = None if raw_id is None or raw_id == "" else str(raw_id)
    if given_id is not None and (problem := _id_problem(raw_id)):
        return InputProblem(where, problem)
    if prompt_field not in row:
        fields = ", ".join(row) or "none"
        return InputProblem(where, f"no field {prompt_field!r} (fields: {fields})", given_id)
    prompt = row[prompt_field]
    if not isinstance(prompt, str):
        return InputProblem(where, f"{prompt_field!r} must be text, got {_kind(prompt)}", given_id)
    if problem := prompt_problem(prompt, max_prompt_chars):
        return InputProblem(where, problem, given_id, prompt[:200])
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
    ReadOptions(prompt_field=prompt_field, max_prompt_chars=max_prompt_chars, limit=limit)
    seen: dict[str, tuple[str, str]] = {}  # id -> (prompt hash, where)
    taken = 0
    for path in paths:
        rows_read = 0
        try:
            rows = _rows(Path(path), prompt_field)
            for where, row in rows:
                rows_read += 1
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
            if not rows_read:
                yield InputProblem(str(path), "no prompts: the input is empty")
        except InputFileError as exc:
            yield InputProblem(exc.where, exc.message)
        except OSError as exc:
            yield InputProblem(str(path), f"cannot read: {exc.strerror or exc}")

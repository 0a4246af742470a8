"""Input formats and bad input: every problem names its file and line, the rest of the batch runs,
and the exit code says something failed."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from aidsafe.batch.inputs import InputProblem, Sample, content_id, read_samples
from aidsafe.cli.main import main

GOOD = [{"id": "a", "prompt": "first prompt"}, {"id": "b", "prompt": "second prompt"}]


def samples_and_problems(*paths: Path, **options) -> tuple[list[Sample], list[InputProblem]]:
    items = list(read_samples(paths, **options))
    return [i for i in items if isinstance(i, Sample)], [i for i in items if isinstance(i, InputProblem)]


def write_csv(path: Path, rows: list[dict], fields: list[str]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
    return path


def test_every_format_gives_the_same_samples(tmp_path):
    import datasets

    jsonl = tmp_path / "p.jsonl"
    jsonl.write_text("".join(json.dumps(r) + "\n" for r in GOOD))
    array = tmp_path / "p.json"
    array.write_text(json.dumps(GOOD))
    table = write_csv(tmp_path / "p.csv", GOOD, ["id", "prompt"])
    folder = tmp_path / "hf"
    datasets.Dataset.from_list(GOOD).save_to_disk(str(folder))
    for path in (jsonl, array, table, folder):
        samples, problems = samples_and_problems(path)
        assert [(s.id, s.prompt) for s in samples] == [("a", "first prompt"), ("b", "second prompt")], path
        assert problems == []


def test_dataset_dict_folder_uses_train_split(tmp_path):
    import datasets

    folder = tmp_path / "hf"
    datasets.DatasetDict({"train": datasets.Dataset.from_list(GOOD)}).save_to_disk(str(folder))
    samples, _ = samples_and_problems(folder)
    assert [s.id for s in samples] == ["a", "b"]


def test_prompt_field_limit_metadata_and_content_ids(tmp_path):
    path = tmp_path / "p.jsonl"
    rows = [{"question": f"q{i}", "topic": "t"} for i in range(5)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    samples, _ = samples_and_problems(path, prompt_field="question", limit=3)
    assert [s.prompt for s in samples] == ["q0", "q1", "q2"]
    assert samples[0].id == content_id("q0") and samples[0].metadata == {"topic": "t"}
    again, _ = samples_and_problems(path, prompt_field="question", limit=3)
    assert [s.id for s in again] == [s.id for s in samples]  # stable across runs


def test_bad_lines_are_reported_with_file_and_line_and_the_rest_is_read(tmp_path):
    path = tmp_path / "mixed.jsonl"
    lines = [
        json.dumps({"id": "ok1", "prompt": "fine"}).encode(),
        b'{"id": "broken", "prompt": ',  # malformed JSON
        json.dumps({"id": "empty", "prompt": "   "}).encode(),
        json.dumps({"id": "long", "prompt": "x" * 101}).encode(),
        b'{"id": "latin1", "prompt": "caf\xe9"}',  # not UTF-8
        json.dumps({"id": "nofield", "text": "hello"}).encode(),
        json.dumps({"id": "number", "prompt": 42}).encode(),
        json.dumps({"id": "ok1", "prompt": "another prompt"}).encode(),  # same id, other prompt
        json.dumps({"id": "ok1", "prompt": "fine"}).encode(),  # exact repeat: dropped quietly
        json.dumps(["not", "an", "object"]).encode(),
        json.dumps({"id": "ok2", "prompt": "also fine"}).encode(),
    ]
    path.write_bytes(b"\n".join(lines) + b"\n")
    samples, problems = samples_and_problems(path, max_prompt_chars=100)
    assert [s.id for s in samples] == ["ok1", "ok2"]
    messages = {p.where: p.message for p in problems}
    assert messages == {
        f"{path}:2": "malformed JSON: Expecting value at column 28",
        f"{path}:3": "empty prompt",
        f"{path}:4": "prompt has 101 characters, over the limit of 100 (--max-prompt-chars)",
        f"{path}:5": "not UTF-8 (byte 0xe9 at column 32)",
        f"{path}:6": "no field 'prompt' (fields: id, text)",
        f"{path}:7": "'prompt' must be text, got a number",
        f"{path}:8": f"duplicate id 'ok1' (first at {path}:1)",
        f"{path}:10": "a line must be a JSON object",
    }


def test_csv_problems_name_the_line(tmp_path):
    path = tmp_path / "p.csv"
    path.write_bytes(b'id,prompt\na,"multi\nline prompt"\nb,\nc,caf\xe9\nd,fine\n')
    samples, problems = samples_and_problems(path)
    assert [s.id for s in samples] == ["a", "d"]
    assert [(p.where, p.message) for p in problems] == [
        (f"{path}:4", "empty prompt"),
        (f"{path}:5", "not UTF-8 (in column 'prompt')"),
    ]


def test_whole_file_problems(tmp_path):
    table = write_csv(tmp_path / "p.csv", GOOD, ["id", "prompt"])
    bad_array = tmp_path / "bad.json"
    bad_array.write_text('[{"prompt": "a"},\n  oops]')
    unknown = tmp_path / "p.parquet"
    unknown.write_text("x")
    samples, problems = samples_and_problems(
        tmp_path / "missing.jsonl", bad_array, unknown, table, prompt_field="question"
    )
    assert samples == []
    assert [str(p) for p in problems] == [
        f"{tmp_path / 'missing.jsonl'}: no such file or folder",
        f"{bad_array}:2: malformed JSON: Expecting value at column 3",
        f"{unknown}: unknown input format '.parquet'; use .jsonl, .json, .csv or a dataset folder",
        f"{table}: no column 'question' (columns: id, prompt); choose one with --prompt-field",
    ]


@pytest.mark.parametrize("unreadable", ["missing.jsonl", "denied.jsonl"])
def test_generate_with_bad_input_runs_the_rest_and_exits_non_zero(tmp_path, stub_server, capsys, unreadable):
    good = tmp_path / "good.jsonl"
    good.write_bytes(b'{"id": "a", "prompt": "fine"}\n{"id": "b", "prompt": ""}\n\xff\xfe\n')
    other = tmp_path / unreadable
    if unreadable == "denied.jsonl":
        other.mkdir()  # a folder that is no dataset: unreadable as input
    out = tmp_path / "out.jsonl"
    code = main(
        ["generate", str(good), str(other), "-o", str(out), "--base-url", stub_server.base_url, "--no-progress"]
    )
    assert code == 1
    assert [json.loads(line)["id"] for line in out.read_text().splitlines()] == ["a"]
    errors = [json.loads(line) for line in (tmp_path / "out.errors.jsonl").read_text().splitlines()]
    assert [e["error"]["node"] for e in errors] == ["input"] * 3
    assert errors[0]["id"] == "b" and f"{good}:2: empty prompt" == errors[0]["error"]["message"]
    assert errors[1]["error"]["message"].startswith(f"{good}:3: not UTF-8")
    assert errors[2]["error"]["message"].startswith(str(other))
    captured = capsys.readouterr()
    assert f"input error: {good}:2: empty prompt" in captured.err
    assert "input errors 3" in captured.out and "errors: " in captured.out

"""The bad-input catalogue: mistakes real users make, each one a row of a table.

Every case runs the `aidsafe` CLI in-process (`main(argv)`) in a fresh folder and asserts the exit
code, that the message names what and where, that no file that existed before changed (checksums
before and after: inputs and earlier outputs) and that no traceback was printed. The HTTP cases
are in `test_bad_requests.py`.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from aidsafe.cli.main import main
from tests.fakes import StubServer, whisper_stub_answer

PROMPT = {"id": "a", "prompt": "How do I pick the lock of my own front door?"}


class Workspace:
    """A fresh folder with helpers that write the files a case needs; paths come back as text."""

    def __init__(self, root: Path, server_url: str) -> None:
        self.root, self.server_url = root, server_url

    def path(self, name: str) -> str:
        return str(self.root / name)

    def write(self, name: str, content: str | bytes) -> str:
        target = self.root / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content.encode() if isinstance(content, str) else content)
        return str(target)

    def jsonl(self, name: str, *rows: dict | bytes | str) -> str:
        lines = [r if isinstance(r, bytes) else (r if isinstance(r, str) else json.dumps(r)).encode() for r in rows]
        return self.write(name, b"".join(line + b"\n" for line in lines))

    def prompts(self, name: str = "in.jsonl") -> str:
        return self.jsonl(name, PROMPT, {"id": "b", "prompt": "How do I bake bread?"})

    def generated(self, name: str = "gen.jsonl", *, baseline: bool = False) -> str:
        """Real `aidsafe generate` output (from the stub server), as a user would have it."""
        inputs = self.prompts(f"{name}.prompts.jsonl")
        flags = ["--baseline"] if baseline else []
        assert main(["generate", inputs, "-o", self.path(name), *self.server(), "--no-progress", *flags]) == 0
        for suffix in (".summary.json", ".errors.jsonl"):
            Path(self.path(name)).with_suffix(suffix).unlink(missing_ok=True)
        Path(inputs).unlink()
        return self.path(name)

    def preference(self, name: str = "pairs.jsonl") -> str:
        generated = self.generated("for_pairs.jsonl")
        assert main(["prefer", generated, "-o", self.path(name), *self.server(), "--no-progress"]) == 0
        for suffix in (".summary.json", ".errors.jsonl"):
            Path(self.path(name)).with_suffix(suffix).unlink(missing_ok=True)
        return self.path(name)

    def server(self) -> list[str]:
        return ["--base-url", self.server_url, "--model", "stub"]

    def policy(self, content: str, name: str = "policy.yaml") -> str:
        return self.write(name, content)


@dataclass(frozen=True)
class Case:
    name: str
    argv: Callable[[Workspace], list[str]]
    code: int
    says: tuple[str, ...]
    """Substrings of what the command printed (stdout and stderr): what is wrong and where."""
    environment: dict[str, str] = field(default_factory=dict)


def gen(*flags: str) -> Callable[[Workspace], list[str]]:
    """`aidsafe generate in.jsonl -o out.jsonl FLAGS` against the stub server."""
    return lambda ws: ["generate", ws.prompts(), "-o", ws.path("out.jsonl"), *ws.server(), "--no-progress", *flags]


def gen_input(name: str, content: str | bytes, *flags: str) -> Callable[[Workspace], list[str]]:
    """`aidsafe generate <file with content>`: the run goes on, bad lines are named."""
    return lambda ws: [
        "generate",
        ws.write(name, content),
        "-o",
        ws.path("out.jsonl"),
        *ws.server(),
        "--no-progress",
        *flags,
    ]


def gen_rows(*rows: dict | bytes | str) -> Callable[[Workspace], list[str]]:
    return lambda ws: [
        "generate",
        ws.jsonl("in.jsonl", *rows),
        "-o",
        ws.path("out.jsonl"),
        *ws.server(),
        "--no-progress",
    ]


def gen_link(name: str, target: str) -> Callable[[Workspace], list[str]]:
    """`aidsafe generate <name>`, where `name` is a symbolic link to `target`."""

    def argv(ws: Workspace) -> list[str]:
        os.symlink(ws.path(target), ws.path(name))
        return ["generate", ws.path(name), "-o", ws.path("out.jsonl"), *ws.server()]

    return argv


def prefer_rows(*rows: dict | bytes | str) -> Callable[[Workspace], list[str]]:
    return lambda ws: ["prefer", ws.jsonl("in.jsonl", *rows), "-o", ws.path("out.jsonl"), *ws.server(), "--no-progress"]


def with_policy(content: str, command: str = "generate") -> Callable[[Workspace], list[str]]:
    def argv(ws: Workspace) -> list[str]:
        policy = ws.policy(content)
        if command == "evaluate":
            return ["evaluate", ws.generated(), "-o", ws.path("eval"), "--no-judge", "--policies", policy]
        return [command, ws.prompts(), "-o", ws.path("out.jsonl"), *ws.server(), "--no-progress", "--policies", policy]

    return argv


FLAG_CASES = [
    Case("concurrency zero", gen("--concurrency", "0"), 2, ("--concurrency", "allowed: 1 or more")),
    Case("concurrency negative", gen("--concurrency", "-4"), 2, ("--concurrency", "allowed: 1 or more")),
    Case("concurrency not a number", gen("--concurrency", "many"), 2, ("--concurrency", "valid integer")),
    Case("limit zero", gen("--limit", "0"), 2, ("--limit", "allowed: 1 or more")),
    Case("max rounds zero", gen("--max-rounds", "0"), 2, ("--max-rounds", "allowed: 1 or more")),
    Case("max tokens negative", gen("--max-tokens", "-1"), 2, ("--max-tokens", "allowed: 1 or more")),
    Case("rpm zero", gen("--rpm", "0"), 2, ("--rpm", "allowed: more than 0")),
    Case("rpm negative", gen("--rpm", "-60"), 2, ("--rpm", "allowed: more than 0")),
    Case("request timeout zero", gen("--request-timeout", "0"), 2, ("--request-timeout", "more than 0")),
    Case("temperature negative", gen("--temperature", "-0.1"), 2, ("--temperature", "allowed: 0 to 2")),
    Case("temperature too high", gen("--temperature", "2.5"), 2, ("--temperature", "allowed: 0 to 2")),
    Case("temperature not a number", gen("--temperature", "hot"), 2, ("--temperature", "valid number")),
    Case("base url without scheme", gen("--base-url", "localhost:8000"), 2, ("--base-url", "not an http(s) URL")),
    Case("base url ftp", gen("--base-url", "ftp://host/v1"), 2, ("--base-url", "not an http(s) URL")),
    Case("judge base url", gen("--judge-base-url", "judge"), 2, ("--judge-base-url", "not an http(s) URL")),
    Case("scorer url", gen("--scorer-url", "/score"), 2, ("--scorer-url", "not an http(s) URL")),
    Case("n deliberators zero", gen("--n-deliberators", "0"), 2, ("--n-deliberators", "allowed: 1 or more")),
    Case("workers zero", gen("--workers", "0"), 2, ("--workers", "allowed: 1 or more")),
    Case("max prompt chars zero", gen("--max-prompt-chars", "0"), 2, ("--max-prompt-chars", "1 or more")),
    Case("parse retries negative", gen("--parse-retries", "-1"), 2, ("--parse-retries", "allowed: 0 or more")),
    Case("http retries negative", gen("--http-retries", "-2"), 2, ("--http-retries", "allowed: 0 or more")),
    Case("empty model name", gen("--model", " "), 2, ("--model", "must not be empty")),
    Case("empty prompt field", gen("--prompt-field", ""), 2, ("--prompt-field", "must not be empty")),
    Case(
        "structured output",
        gen("--structured-output", "xml"),
        2,
        ("--structured-output", "Input should be 'auto'", "'xml'"),
    ),
    Case("unknown flag", gen("--max-round", "2"), 2, ("unrecognized arguments: --max-round",)),
    Case(
        "base url from the environment",
        lambda ws: ["generate", ws.prompts(), "-o", ws.path("out.jsonl"), "--no-progress"],
        2,
        ("--base-url (from $OPENAI_BASE_URL)", "'127.0.0.1:9' is not an http(s) URL"),
        {"OPENAI_BASE_URL": "127.0.0.1:9"},
    ),
    Case(
        "prefer whisper iterations zero",
        lambda ws: [*prefer_rows(PROMPT)(ws), "--whisper-iterations", "0"],
        2,
        ("--whisper-iterations", "allowed: 1 or more"),
    ),
    Case(
        "prefer violation threshold",
        lambda ws: [*prefer_rows(PROMPT)(ws), "--violation-threshold", "1.5"],
        2,
        ("--violation-threshold", "allowed: 0 to 1"),
    ),
]


def _symlinked_output(ws: Workspace) -> list[str]:
    inputs = ws.prompts()
    os.symlink(inputs, ws.path("out.jsonl"))
    return ["generate", inputs, "-o", ws.path("out.jsonl"), *ws.server()]


def _own_file_as_input(suffix: str) -> Callable[[Workspace], list[str]]:
    """An earlier run's errors file (or summary, checkpoint) given back as the input, with the default -o."""

    def argv(ws: Workspace) -> list[str]:
        own = ws.jsonl(f"prompts.generated{suffix}", PROMPT)
        return ["generate", own, *ws.server(), "--no-progress"]

    return argv


def _in_folder(ws: Workspace) -> list[str]:
    import datasets

    folder = ws.path("hf")
    datasets.Dataset.from_list([PROMPT]).save_to_disk(folder)
    return ["generate", folder, "-o", ws.path("hf/out.jsonl"), *ws.server()]


def _existing_output(*lines: dict | bytes | str) -> Callable[[Workspace], list[str]]:
    def argv(ws: Workspace) -> list[str]:
        ws.write(
            "out.jsonl",
            b"".join(line if isinstance(line, bytes) else (json.dumps(line) + "\n").encode() for line in lines),
        )
        return ["generate", ws.prompts(), "-o", ws.path("out.jsonl"), *ws.server(), "--no-progress"]

    return argv


def _generate_over(kind: str) -> Callable[[Workspace], list[str]]:
    def argv(ws: Workspace) -> list[str]:
        earlier = ws.generated("earlier.jsonl", baseline=kind == "baseline")
        flags = [] if kind == "baseline" else ["--baseline"]
        return ["generate", ws.prompts(), "-o", earlier, *ws.server(), "--no-progress", *flags]

    return argv


FILE_CASES = [
    Case(
        "output is the input",
        lambda ws: ["generate", ws.prompts(), "-o", ws.path("in.jsonl"), *ws.server()],
        2,
        ("in.jsonl: is also an input",),
    ),
    Case("output is a link to the input", _symlinked_output, 2, ("out.jsonl: is also an input",)),
    Case(
        "output is a folder",
        lambda ws: ["generate", ws.prompts(), "-o", str(Path(ws.write("d/x", "")).parent), *ws.server()],
        2,
        ("is a folder",),
    ),
    Case(
        "output under a file",
        lambda ws: ["generate", ws.prompts(), "-o", ws.write("f", "") + "/out.jsonl", *ws.server()],
        2,
        ("is a file, not a folder",),
    ),
    Case(
        "own errors file as input",
        _own_file_as_input(".errors.jsonl"),
        2,
        ("prompts.generated.errors.jsonl: is also an input",),
    ),
    Case(
        "own summary as input",
        lambda ws: [
            "generate",
            ws.write("prompts.generated.summary.json", "{}"),
            "-o",
            ws.path("prompts.generated.jsonl"),
            *ws.server(),
        ],
        2,
        ("prompts.generated.summary.json: is also an input",),
    ),
    Case(
        "own checkpoints as input",
        lambda ws: ["generate", ws.write("run.checkpoints.sqlite", "x"), "-o", ws.path("run.jsonl"), *ws.server()],
        2,
        ("run.checkpoints.sqlite: is also an input",),
    ),
    Case(
        "output is the policy file",
        lambda ws: [
            "generate",
            ws.prompts(),
            "-o",
            ws.write("p.yaml", "x"),
            "--policies",
            ws.path("p.yaml"),
            *ws.server(),
        ],
        2,
        ("p.yaml: is also an input",),
    ),
    Case("output inside the input folder", _in_folder, 2, ("inside the input folder",)),
    Case(
        "existing output is a CSV",
        _existing_output(b"id,prompt\n", b"a,hello\n"),
        2,
        ("out.jsonl:1: not a generate record", "choose another output name"),
    ),
    Case(
        "foreign line with a matching id",
        _existing_output({"id": "a", "note": "mine"}),
        2,
        ("out.jsonl:1: not a generate record",),
    ),
    Case(
        "foreign last line without a line end",
        _existing_output(b"my notes, unsaved"),
        2,
        ("out.jsonl:1: not a generate record",),
    ),
    Case(
        "baseline run over generate output",
        _generate_over("generate"),
        2,
        ("earlier.jsonl:1: not a baseline record", "stop_reason"),
    ),
    Case(
        "generate run over baseline output",
        _generate_over("baseline"),
        2,
        ("earlier.jsonl:1: not a generate record", "stop_reason"),
    ),
]
DEEP = "[" * 100_000 + "]" * 100_000
INPUT_CASES = [
    Case(
        "lone surrogate in a prompt",
        gen_rows('{"id": "s", "prompt": "bad \\ud800 text"}', PROMPT),
        1,
        ("in.jsonl:1", "'prompt' holds a lone surrogate"),
    ),
    Case(
        "lone surrogate in an id",
        gen_rows('{"id": "\\udfff", "prompt": "fine"}', PROMPT),
        1,
        ("in.jsonl:1", "'id' holds a lone surrogate"),
    ),
    Case(
        "lone surrogate in metadata",
        gen_rows('{"prompt": "fine", "extra": {"k": ["\\ud83d"]}}', PROMPT),
        1,
        ("in.jsonl:1", "'extra'.k.0 holds a lone surrogate"),
    ),
    Case(
        "lone surrogate in a field name",
        gen_rows('{"prompt": "fine", "\\ud800": 1}', PROMPT),
        1,
        ("in.jsonl:1", "field name"),
    ),
    Case("NUL in a prompt", gen_rows('{"id": "n", "prompt": "a\\u0000b"}', PROMPT), 1, ("in.jsonl:1", "NUL character")),
    Case("NUL byte in a CSV", gen_input("in.csv", b"id,prompt\nn,a\x00b\nok,fine\n"), 1, ("in.csv:2", "NUL character")),
    Case(
        "BOM before JSONL", gen_input("in.jsonl", b"\xef\xbb\xbf" + json.dumps(PROMPT).encode() + b"\n"), 0, ("done 1",)
    ),
    Case("BOM before a CSV header", gen_input("in.csv", b"\xef\xbb\xbfid,prompt\na,hello\n"), 0, ("done 1",)),
    Case("CRLF JSONL", gen_input("in.jsonl", json.dumps(PROMPT).encode() + b"\r\n\r\n"), 0, ("done 1",)),
    Case("CRLF CSV", gen_input("in.csv", b'id,prompt\r\na,"two\r\nlines"\r\n'), 0, ("done 1",)),
    Case(
        "CSV field over the csv module limit",
        gen_input("in.csv", "id,prompt\nbig," + "x" * 200_000 + "\nok,fine\n"),
        1,
        ("in.csv:2", "200,000 characters, over the limit"),
    ),
    Case(
        "CSV row with extra fields",
        gen_input("in.csv", "id,prompt\na,hello, world\nb,fine\n"),
        1,
        ("in.csv:2", "has 3 fields but the header has 2", "quote it"),
    ),
    Case(
        "CSV row with missing fields",
        gen_input("in.csv", "id,prompt,topic\na,hello\nb,fine,t\n"),
        1,
        ("in.csv:2", "has 2 fields but the header has 3"),
    ),
    Case(
        "CSV without the prompt column",
        gen_input("in.csv", "id,question\na,hello\n"),
        1,
        ("in.csv", "no column 'prompt'", "--prompt-field"),
    ),
    Case("CSV header only", gen_input("in.csv", "id,prompt\n"), 1, ("in.csv", "no prompts: the input is empty")),
    Case("CSV not UTF-8", gen_input("in.csv", b"id,prompt\na,caf\xe9\n"), 1, ("in.csv:2", "not UTF-8")),
    Case(
        "id is an object",
        gen_rows({"id": {"k": 1}, "prompt": "p"}, PROMPT),
        1,
        ("in.jsonl:1", "'id' must be text or a whole number, got an object"),
    ),
    Case("id is a list", gen_rows({"id": [1, 2], "prompt": "p"}, PROMPT), 1, ("in.jsonl:1", "got a list")),
    Case("id is a boolean", gen_rows({"id": True, "prompt": "p"}, PROMPT), 1, ("in.jsonl:1", "got true/false")),
    Case("id is a fraction", gen_rows({"id": 1.5, "prompt": "p"}, PROMPT), 1, ("in.jsonl:1", "got a number")),
    Case(
        "id with a line break",
        gen_rows({"id": "a\nb", "prompt": "p"}, {"id": "z", "prompt": "q"}),
        1,
        ("in.jsonl:1", "line break"),
    ),
    Case("whole-number id is kept", gen_rows({"id": 7, "prompt": "p"}), 0, ("done 1",)),
    Case("empty file", gen_input("in.jsonl", b""), 1, ("in.jsonl", "no prompts: the input is empty")),
    Case("blank lines only", gen_input("in.jsonl", b"\n  \n\r\n"), 1, ("in.jsonl", "no prompts: the input is empty")),
    Case("empty JSON array", gen_input("in.json", b"[]"), 1, ("in.json", "no prompts")),
    Case(
        "JSON object instead of array",
        gen_input("in.json", b'{"prompt": "x"}'),
        1,
        ("in.json", "must be an array of objects"),
    ),
    Case("JSON nested too deeply", gen_input("in.json", DEEP), 1, ("in.json", "nested too deeply")),
    Case("JSONL line nested too deeply", gen_rows(DEEP, PROMPT), 1, ("in.jsonl:1", "nested too deeply")),
    Case("malformed JSONL line", gen_rows(b'{"prompt": ', PROMPT), 1, ("in.jsonl:1", "malformed JSON")),
    Case("JSONL line not an object", gen_rows(b'"just text"', PROMPT), 1, ("in.jsonl:1", "must be a JSON object")),
    Case("JSONL not UTF-8", gen_rows(b'{"prompt": "caf\xe9"}', PROMPT), 1, ("in.jsonl:1", "not UTF-8 (byte 0xe9")),
    Case("empty prompt", gen_rows({"prompt": "  "}, PROMPT), 1, ("in.jsonl:1", "empty prompt")),
    Case(
        "prompt over the limit",
        gen_rows({"prompt": "x" * 17_000}, PROMPT),
        1,
        ("in.jsonl:1", "17,000 characters", "--max-prompt-chars"),
    ),
    Case("prompt is null", gen_rows({"prompt": None}, PROMPT), 1, ("in.jsonl:1", "'prompt' must be text, got null")),
    Case("prompt is a list", gen_rows({"prompt": ["a"]}, PROMPT), 1, ("in.jsonl:1", "got a list")),
    Case(
        "no prompt field",
        gen_rows({"question": "q"}, PROMPT),
        1,
        ("in.jsonl:1", "no field 'prompt' (fields: question)"),
    ),
    Case(
        "same id, another prompt",
        gen_rows(PROMPT, {"id": "a", "prompt": "other"}),
        1,
        ("in.jsonl:2", "duplicate id 'a'"),
    ),
    Case(
        "missing input",
        lambda ws: ["generate", ws.path("nope.jsonl"), "-o", ws.path("out.jsonl"), *ws.server()],
        1,
        ("nope.jsonl", "no such file"),
    ),
    Case(
        "broken symbolic link",
        gen_link("in.jsonl", "gone.jsonl"),
        1,
        ("in.jsonl", "symbolic link to a missing file"),
    ),
    Case(
        "symbolic link loop",
        gen_link("loop.jsonl", "loop.jsonl"),
        1,
        ("loop.jsonl", "Too many levels of symbolic links"),
    ),
    Case(
        "folder that is no dataset",
        lambda ws: [
            "generate",
            str(Path(ws.write("notes/a.txt", "x")).parent),
            "-o",
            ws.path("out.jsonl"),
            *ws.server(),
        ],
        1,
        ("notes", "not a Hugging Face dataset folder"),
    ),
    Case("unknown input format", gen_input("in.txt", "hello"), 1, ("in.txt", "unknown input format '.txt'")),
    Case(
        "a device as input",
        lambda ws: ["generate", "/dev/null", "-o", ws.path("out.jsonl"), *ws.server()],
        1,
        ("/dev/null", "not a regular file"),
    ),
    Case(
        "prefer on its own output",
        lambda ws: ["prefer", ws.preference(), "-o", ws.path("again.jsonl"), *ws.server(), "--no-progress"],
        1,
        ("pairs.jsonl:1", "is a preference record", "chosen side would be generated again"),
    ),
    Case(
        "prefer: thoughts without a response",
        prefer_rows({"id": "t", "prompt": "p", "thoughts": []}, PROMPT),
        1,
        ("in.jsonl:1", "has 'thoughts' but no 'response'"),
    ),
    Case(
        "prefer: thoughts of the wrong shape",
        prefer_rows({"id": "t", "prompt": "p", "thoughts": [1], "response": "r"}, PROMPT),
        1,
        ("in.jsonl:1", "not a usable chosen sample"),
    ),
    Case(
        "prefer: output is the input",
        lambda ws: ["prefer", ws.prompts(), "-o", ws.path("in.jsonl"), *ws.server()],
        2,
        ("in.jsonl: is also an input",),
    ),
    Case(
        "prefer: existing output holds generate records",
        lambda ws: ["prefer", ws.prompts(), "-o", ws.generated(), *ws.server()],
        2,
        ("gen.jsonl:1: not a prefer record",),
    ),
]


def _export_twice(ws: Workspace) -> list[str]:
    """An earlier export, then an export of an empty file over it."""
    assert main(["export", ws.generated(), "-o", ws.path("sft.jsonl")]) == 0
    return ["export", ws.write("empty.jsonl", ""), "-o", ws.path("sft.jsonl")]


EXPORT_CASES = [
    Case(
        "export X -o X",
        lambda ws: ["export", ws.generated(), "-o", ws.path("gen.jsonl")],
        2,
        ("gen.jsonl: is also an input",),
    ),
    Case(
        "export parquet over the input",
        lambda ws: ["export", ws.generated("gen.parquet"), "-o", ws.path("gen.jsonl")],
        2,
        ("gen.parquet: is also an input",),
    ),
    Case(
        "export to a folder",
        lambda ws: ["export", ws.generated(), "-o", str(Path(ws.write("d/x", "")).parent)],
        2,
        ("is a folder",),
    ),
    Case("export of a missing file", lambda ws: ["export", ws.path("nope.jsonl")], 2, ("nope.jsonl: no such file",)),
    Case("export of a folder", lambda ws: ["export", str(Path(ws.write("d/x", "")).parent)], 2, ("d: not a file",)),
    Case(
        "export of an empty file over an earlier export",
        _export_twice,
        1,
        ("empty.jsonl: no valid sft input records; nothing written",),
    ),
    Case(
        "sft export of preference records",
        lambda ws: ["export", ws.preference()],
        1,
        ("pairs.jsonl:1", "export it with --format dpo"),
    ),
    Case(
        "dpo export of generate records",
        lambda ws: ["export", ws.generated(), "--format", "dpo"],
        1,
        ("gen.jsonl:1", "export it with --format sft"),
    ),
    Case(
        "export of an errors file",
        lambda ws: [
            "export",
            ws.jsonl("x.errors.jsonl", {"id": "a", "error": {"node": "input", "message": "m"}, "prompt": "p"}),
        ],
        1,
        ("x.errors.jsonl:1", "errors-file line"),
    ),
    Case(
        "export of a non-UTF-8 line",
        lambda ws: ["export", ws.jsonl("g.jsonl", b'{"id": "\xff"}')],
        1,
        ("g.jsonl:1", "not a sft input record"),
    ),
    Case(
        "export unknown format",
        lambda ws: ["export", ws.generated(), "--format", "kto"],
        2,
        ("--format", "invalid choice: 'kto'"),
    ),
]

POLICY_CASES = [
    Case(
        "policy file missing",
        lambda ws: gen("--policies", ws.path("nope.yaml"))(ws),
        2,
        ("nope.yaml", "cannot read policy file"),
    ),
    Case(
        "policy file is a folder",
        lambda ws: gen("--policies", str(Path(ws.write("pol/x", "")).parent))(ws),
        2,
        ("pol", "not a readable YAML/JSON policy file"),
    ),
    Case(
        "policy YAML malformed", with_policy("name: x\npolicies: [\n"), 2, ("policy.yaml", "not a readable YAML/JSON")
    ),
    Case("policy file empty", with_policy(""), 2, ("policy.yaml", "invalid policy file")),
    Case("policy file a list", with_policy("- a\n- b\n"), 2, ("policy.yaml", "invalid policy file")),
    Case("policy without policies", with_policy("name: x\npolicies: []\n"), 2, ("policy.yaml", "policies")),
    Case(
        "policy duplicate ids",
        with_policy("name: x\npolicies:\n" + "  - {id: a, title: A, forbids: [x]}\n" * 2),
        2,
        ("duplicate policy ids: a",),
    ),
    Case(
        "policy bad id",
        with_policy("name: x\npolicies:\n  - {id: Bad Id, title: A, forbids: [x]}\n"),
        2,
        ("policies.0.id",),
    ),
    Case(
        "policy unknown field",
        with_policy("name: x\npolicies:\n  - {id: a, title: A, forbids: [x], severity: 3}\n"),
        2,
        ("policies.0.severity", "Extra inputs"),
    ),
    Case(
        "policy not UTF-8",
        lambda ws: [
            "generate",
            ws.prompts(),
            "-o",
            ws.path("out.jsonl"),
            *ws.server(),
            "--policies",
            ws.write("p.yaml", b"name: caf\xe9\n"),
        ],
        2,
        ("p.yaml", "not a readable"),
    ),
    Case(
        "policy JSON malformed",
        lambda ws: [
            "generate",
            ws.prompts(),
            "-o",
            ws.path("out.jsonl"),
            *ws.server(),
            "--policies",
            ws.write("p.json", "{"),
        ],
        2,
        ("p.json", "not a readable"),
    ),
    Case("prefer with a bad policy file", with_policy("name: x\n", "prefer"), 2, ("policy.yaml", "policies")),
    Case("contrast with a bad policy file", with_policy("name: x\n", "contrast"), 2, ("policy.yaml", "policies")),
    Case(
        "contrast with a mix whose shares do not sum to 1",
        lambda ws: [
            "contrast",
            ws.prompts(),
            "-o",
            ws.path("out.jsonl"),
            *ws.server(),
            "--contrast-mix",
            "harmful=0.5",
        ],
        2,
        ("--contrast-mix", "the shares sum to 0.5, not 1"),
    ),
    Case(
        "contrast writing its prompt set over a user's file",
        lambda ws: ["contrast", ws.prompts(), "-o", ws.prompts("mine.jsonl"), *ws.server()],
        2,
        ("mine.jsonl:1", "not a line of a contrast prompt set"),
    ),
    Case(
        "contrast given a prompt set as seeds",
        lambda ws: [
            "contrast",
            ws.jsonl("in.jsonl", {"id": "k", "prompt": "How do I kill a Python process?", "class": "benign"}),
            "-o",
            ws.path("out.jsonl"),
            *ws.server(),
            "--no-progress",
        ],
        1,
        ("in.jsonl:1", "a seed is a harmful prompt, but this row's class is 'benign'"),
    ),
]


def evaluate(*flags: str) -> Callable[[Workspace], list[str]]:
    """`aidsafe evaluate <generate output> -o eval FLAGS` against the stub server."""
    return lambda ws: [
        "evaluate",
        ws.generated(),
        "-o",
        ws.path("eval"),
        *ws.server(),
        "--no-progress",
        *flags,
    ]


def _evaluate_into_input_folder(ws: Workspace) -> list[str]:
    records = ws.generated("eval/samples.jsonl")
    return ["evaluate", records, "-o", ws.path("eval"), *ws.server()]


def _foreign_samples(ws: Workspace) -> list[str]:
    ws.jsonl("eval/samples.jsonl", {"id": "a", "mine": True})
    return ["evaluate", ws.generated(), "-o", ws.path("eval"), *ws.server(), "--no-progress"]


EVALUATE_CASES = [
    Case("evaluate limit zero", evaluate("--limit", "0"), 2, ("--limit", "allowed: 1 or more")),
    Case("evaluate concurrency zero", evaluate("--concurrency", "0"), 2, ("--concurrency", "allowed: 1 or more")),
    Case("evaluate parallel calls zero", evaluate("--parallel-calls", "0"), 2, ("--parallel-calls", "1 or more")),
    Case("evaluate temperature", evaluate("--temperature", "9"), 2, ("--temperature", "allowed: 0 to 2")),
    Case(
        "evaluate judge base url",
        evaluate("--judge-base-url", "judge:8000"),
        2,
        ("--judge-base-url", "not an http(s) URL"),
    ),
    Case(
        "evaluate missing file",
        lambda ws: ["evaluate", ws.path("nope.jsonl"), "-o", ws.path("eval"), "--no-judge"],
        2,
        ("nope.jsonl: cannot read",),
    ),
    Case(
        "evaluate -o is a file",
        lambda ws: ["evaluate", ws.generated(), "-o", ws.write("eval", "x"), "--no-judge"],
        2,
        ("eval: is a file, not a folder",),
    ),
    Case(
        "evaluate -o is the run file",
        lambda ws: ["evaluate", ws.generated(), "-o", ws.path("gen.jsonl"), "--no-judge"],
        2,
        ("gen.jsonl: is a file, not a folder",),
    ),
    Case(
        "evaluate --no-judge with prices",
        lambda ws: [
            "evaluate",
            ws.generated(),
            "-o",
            ws.path("eval"),
            "--no-judge",
            "--max-cost",
            "1",
            "--input-price",
            "1",
            "--output-price",
            "2",
        ],
        2,
        ("--input-price, --output-price, --max-cost: --no-judge calls no model",),
    ),
    Case("evaluate output over its input", _evaluate_into_input_folder, 2, ("samples.jsonl: is also an input",)),
    Case("evaluate over foreign samples", _foreign_samples, 2, ("samples.jsonl:1: not a evaluate record",)),
    Case(
        "evaluate baseline without shared ids",
        lambda ws: [
            "evaluate",
            ws.generated(),
            "--baseline",
            ws.jsonl("other.jsonl", {"id": "zz", "prompt": "p", "thoughts": [], "response": "r"}),
            "-o",
            ws.path("eval"),
            *ws.server(),
        ],
        2,
        ("no record id of", "gen.jsonl is in", "other.jsonl", "paired by id"),
    ),
    Case(
        "evaluate an errors file",
        lambda ws: [
            "evaluate",
            ws.jsonl("x.errors.jsonl", {"id": "a", "error": {"node": "input", "message": "m"}, "prompt": "p"}),
            "-o",
            ws.path("eval"),
            "--no-judge",
        ],
        1,
        ("x.errors.jsonl:1", "errors-file line"),
    ),
    Case(
        "evaluate a bad policy file",
        with_policy("policies: 3\n", "evaluate"),
        2,
        ("policy.yaml", "invalid policy file"),
    ),
    Case(
        "evaluate a CSV",
        lambda ws: ["evaluate", ws.write("run.csv", "id,prompt\na,b\n"), "-o", ws.path("eval"), "--no-judge"],
        1,
        ("run.csv:1", "not JSON"),
    ),
]


def serve(*flags: str) -> Callable[[Workspace], list[str]]:
    return lambda ws: ["serve", "--base-url", ws.server_url, *flags]


SERVE_CASES = [
    Case("serve port out of range", serve("--port", "70000"), 2, ("--port", "allowed: 0 to 65535")),
    Case("serve port not a number", serve("--port", "http"), 2, ("--port", "valid integer")),
    Case("serve body limit zero", serve("--max-body-bytes", "0"), 2, ("--max-body-bytes", "allowed: 1 or more")),
    Case("serve batch cap zero", serve("--max-batch-inputs", "0"), 2, ("--max-batch-inputs", "allowed: 1 or more")),
    Case("serve prompt limit zero", serve("--max-prompt-chars", "0"), 2, ("--max-prompt-chars", "1 or more")),
    Case("serve header timeout zero", serve("--header-timeout", "0"), 2, ("--header-timeout", "more than 0")),
    Case("serve body timeout negative", serve("--body-timeout", "-1"), 2, ("--body-timeout", "more than 0")),
    Case("serve deliberators zero", serve("--n-deliberators", "0"), 2, ("--n-deliberators", "1 or more")),
    Case(
        "serve base url", lambda ws: ["serve", "--base-url", "127.0.0.1:8080"], 2, ("--base-url", "not an http(s) URL")
    ),
    Case("serve max rounds", serve("--max-rounds", "-1"), 2, ("--max-rounds", "allowed: 1 or more")),
]

CATALOGUE = FLAG_CASES + FILE_CASES + INPUT_CASES + EXPORT_CASES + POLICY_CASES + EVALUATE_CASES + SERVE_CASES


def checksums(root: Path) -> dict[str, str]:
    return {
        str(path.relative_to(root)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(root.rglob("*"))
        if path.is_file() and not path.is_symlink()
    }


@pytest.fixture(scope="module")
def server():
    with StubServer(respond=whisper_stub_answer) as stub:
        yield stub


@pytest.mark.parametrize("case", CATALOGUE, ids=lambda case: case.name)
def test_bad_input_is_named_nothing_is_lost_no_traceback(case, tmp_path, server, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for name, value in case.environment.items():
        monkeypatch.setenv(name, value)
    ws = Workspace(tmp_path, server.base_url)
    argv = case.argv(ws)
    capsys.readouterr()
    before = checksums(tmp_path)
    code = main(argv)
    printed = "\n".join(capsys.readouterr())
    assert code == case.code, printed
    for fragment in case.says:
        assert fragment in printed, f"{fragment!r} not in:\n{printed}"
    assert "Traceback" not in printed
    after = checksums(tmp_path)
    assert {name: digest for name, digest in after.items() if name in before} == before, "an existing file changed"


def test_generate_and_baseline_exports_of_one_prompts_file_do_not_collide(tmp_path, server, monkeypatch):
    monkeypatch.chdir(tmp_path)
    ws = Workspace(tmp_path, server.base_url)
    prompts = ws.prompts("prompts.jsonl")
    for flags in ([], ["--baseline"]):
        assert main(["generate", prompts, *ws.server(), "--no-progress", *flags]) == 0
    assert main(["export", "prompts.generated.jsonl"]) == 0
    assert main(["export", "prompts.baseline.jsonl"]) == 0
    for kind in ("generated", "baseline"):
        assert len(Path(f"prompts.{kind}.sft.jsonl").read_text().splitlines()) == 2
        assert Path(f"prompts.{kind}.sft.parquet").is_file()


def test_an_export_replaces_every_file_of_the_earlier_one(tmp_path, server):
    import datasets

    ws = Workspace(tmp_path, server.base_url)
    generated = ws.generated()
    assert main(["export", generated, "-o", ws.path("sft.jsonl")]) == 0
    first_line = Path(generated).read_text().splitlines()[0]
    Path(generated).write_text(first_line + "\n")
    assert main(["export", generated, "-o", ws.path("sft.jsonl")]) == 0
    assert len(Path(ws.path("sft.jsonl")).read_text().splitlines()) == 1
    assert datasets.Dataset.from_parquet(ws.path("sft.parquet")).num_rows == 1
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".partial")] == []


def test_a_line_cut_by_a_kill_is_repaired_with_a_note(tmp_path, server, capsys):
    ws = Workspace(tmp_path, server.base_url)
    generated = Path(ws.generated())
    lines = generated.read_bytes().splitlines(keepends=True)
    generated.write_bytes(lines[0] + lines[1][:40])  # the second record cut mid-write
    prompts = ws.prompts()
    assert main(["generate", prompts, "-o", str(generated), *ws.server(), "--no-progress"]) == 0
    assert "removed a last line cut off by an interrupted write" in capsys.readouterr().err
    assert sorted(json.loads(line)["id"] for line in generated.read_text().splitlines()) == ["a", "b"]


def test_an_internal_error_names_its_log_file_and_debug_shows_the_traceback(tmp_path, monkeypatch, capsys):
    from aidsafe.cli import export

    def broken(*args, **kwargs):
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(export, "export", broken)
    records = Workspace(tmp_path, "").jsonl("r.jsonl", {"id": "a"})
    assert main(["export", records]) == 3
    err = capsys.readouterr().err
    assert "internal error (ZeroDivisionError: a bug)" in err and "Traceback" not in err
    log = Path(err.split("the traceback is in ")[1].split(" ")[0])
    assert "ZeroDivisionError" in log.read_text() and "Traceback" in log.read_text()
    log.unlink()
    with pytest.raises(ZeroDivisionError):
        main(["export", records, "--debug"])


@pytest.mark.slow
@pytest.mark.parametrize(("stop", "workers"), [(signal.SIGINT, "1"), (signal.SIGTERM, "2")])
def test_ctrl_c_and_sigterm_end_quietly_with_the_resume_hint(tmp_path, stop, workers):
    # Far more samples than finish before the signal: on a loaded machine a 40-sample run had
    # finished (exit 0) by the time the poll below saw its third line.
    prompts = ({"id": f"s{i}", "prompt": f"question {i}"} for i in range(400))
    inputs = Workspace(tmp_path, "").jsonl("in.jsonl", *prompts)
    out = tmp_path / "out.jsonl"
    command = [sys.executable, "-c", "import sys; from aidsafe.cli.main import console_main; sys.exit(console_main())"]
    with StubServer(latency=0.1) as slow:
        flags = ["--base-url", slow.base_url, "--concurrency", "4", "--workers", workers, "--no-progress"]
        run = subprocess.Popen(
            [*command, "generate", inputs, "-o", str(out), *flags], stderr=subprocess.PIPE, text=True
        )
        try:
            deadline = time.monotonic() + 120
            while not (out.exists() and out.read_text().count("\n") >= 3) and time.monotonic() < deadline:
                time.sleep(0.1)
            run.send_signal(stop)
            _, stderr = run.communicate(timeout=60)
        finally:
            if run.poll() is None:
                run.kill()
    assert run.returncode == 130, stderr
    assert "run the same command to resume" in stderr
    assert "Traceback" not in stderr and "never retrieved" not in stderr, stderr

"""The code blocks of the README and of `docs/` run as a user pastes them, page by page.

Each page's `bash` and `python` blocks run in order in one fresh folder (a copy of `examples/` and
`prompts.jsonl` in it), so a block may use what an earlier block of its page wrote. The model
behind every command is the tests' loopback stub server (`tests/fakes.py`): it is the
`OPENAI_BASE_URL` of the blocks, and the model URLs the pages name (`http://127.0.0.1:8000/v1`,
`https://api.openai.com/v1`, ...) are replaced by its URL. `pip` and `apt-get` are no-ops: the
install is what `.ci/run` runs. A block is steered by an HTML comment right above it, clauses
separated by `;`:

- `skip: REASON`: not run, for the reason given (a second machine, a GPU, a remote key, ...);
  the reason is the rest of the comment;
- `file: NAME`: not run; its text is written to NAME before the page's blocks run;
- `before: COMMAND`: a command run first, for input the page takes as given;
- `creates: FILE ...`, `prints: TEXT`, `exit: CODE`: what the block must leave, print, exit with
  (exit code 0 unless said);
- `serve`: `http://127.0.0.1:8000` is an `aidsafe serve` of the stub, started by the test;
- `xfail: REASON`: a known bug makes the block fail: it must fail (so the fix removes the mark).
  Like `skip`, the reason is the rest of the comment.

Every `bash` or `python` block runs or names its reason to be skipped: nothing is left out silently.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from markdown_it import MarkdownIt

from tests.fakes import ROOT, StubServer, whisper_stub_answer
from tests.services import free_port, wait_until_healthy

EXAMPLE_CARD = ROOT / "docs" / "example_card.md"
"""An output of `aidsafe export` shown as it is written, not a page of commands (`tests/test_card.py`)."""
PAGES = [ROOT / "README.md", *sorted(p for p in (ROOT / "docs").glob("*.md") if p != EXAMPLE_CARD)]
RUN = {"bash", "python"}
KEYS = {"skip", "file", "before", "creates", "prints", "exit", "serve", "xfail"}
MODEL_URLS = ("https://api.openai.com/v1", "http://127.0.0.1:8000/v1", "http://127.0.0.1:8080/v1")
SERVED = "http://127.0.0.1:8000"
FORKSERVER = Path(__file__).with_name("docs_forkserver.py")
SHIMS = f"""set -euo pipefail
pip() {{ echo "docs test: not run: pip $* (the install: .ci/run runs it)"; }}
apt-get() {{ echo "docs test: not run: apt-get $*"; }}
aidsafe() {{ "{sys.executable}" -S "{FORKSERVER}" client "$DOCS_TEST_SOCKET" aidsafe "$@"; }}
"""
BLOCK_TIMEOUT = 120


@dataclass
class Block:
    page: Path
    line: int
    lang: str
    code: str
    directives: dict[str, list[str]] = field(default_factory=dict)

    @property
    def where(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"


def directives(comment: str) -> dict[str, list[str]]:
    """`<!-- docs-test: key: value; key -->` as {key: [values]} (a key may repeat)."""
    found = re.fullmatch(r"\s*<!--\s*docs-test:(.*?)-->\s*", comment, re.DOTALL)
    if not found:
        return {}
    parsed: dict[str, list[str]] = {}
    text = found.group(1)
    for last in ("skip", "xfail"):
        text, said, reason = text.partition(f"{last}:")
        if said:
            parsed[last] = [" ".join(reason.split())]
    for clause in filter(None, (c.strip() for c in text.split(";"))):
        key, _, value = clause.partition(":")
        key = key.strip()
        if key not in KEYS:
            raise ValueError(f"unknown docs-test directive {key!r} in {comment.strip()!r}")
        parsed.setdefault(key, []).append(" ".join(value.split()))
    return parsed


def blocks(page: Path) -> list[Block]:
    """The fenced blocks of `page`, each with the directives of the HTML comment right above it."""
    found, previous = [], None
    for token in MarkdownIt("commonmark").parse(page.read_text(encoding="utf-8")):
        if token.type == "fence":
            lang = token.info.split()[0] if token.info.strip() else ""
            told = directives(previous.content) if previous is not None and previous.type == "html_block" else {}
            assert token.map is not None
            found.append(Block(page, token.map[0] + 1, lang, token.content, told))
        if token.type not in ("list_item_open", "bullet_list_open", "paragraph_open"):
            previous = token
    return found


def test_every_block_runs_or_says_why_not():
    for page in PAGES:
        for block in blocks(page):
            if block.lang in RUN or "file" in block.directives:
                assert "skip" not in block.directives or all(block.directives["skip"]), f"{block.where}: no reason"
            else:
                assert not block.directives, f"{block.where}: directives on a block that never runs"


def test_directives_are_read_and_checked():
    assert directives("<!-- docs-test: creates: a b; skip: a second machine; a GPU -->") == {
        "skip": ["a second machine; a GPU"],
        "creates": ["a b"],
    }
    assert directives("<!-- a comment -->") == {}
    with pytest.raises(ValueError, match="unknown docs-test directive 'skips'"):
        directives("<!-- docs-test: skips: typo -->")


@contextmanager
def served(env: dict[str, str], model_url: str) -> Iterator[str]:
    """`aidsafe serve` on the stub model, as the page's `aidsafe serve --base-url ...` starts it."""
    port = free_port()
    command = [sys.executable, "-m", "aidsafe.cli.main", "serve", "--base-url", model_url, "--model", "stub-model"]
    process = subprocess.Popen(
        [*command, "--port", str(port)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_healthy(process, url)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)


@pytest.fixture(scope="module")
def forkserver(tmp_path_factory) -> Iterator[str]:
    """The `aidsafe` of the blocks, imported once (`tests/docs_forkserver.py`)."""
    socket_path = str(tmp_path_factory.mktemp("forkserver") / "socket")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    process = subprocess.Popen(
        [sys.executable, str(FORKSERVER), "serve", socket_path], cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True
    )
    try:
        assert process.stdout is not None and process.stdout.readline() == "ready\n", "the fork server did not start"
        yield socket_path
    finally:
        process.terminate()
        process.wait(timeout=30)


def run(block: Block, code: str, folder: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """The block in bash (`aidsafe` through the fork server), or a Python block in a forked child."""
    if block.lang == "bash":
        command, stdin = ["bash", "-c", SHIMS + code], None
    else:
        command, stdin = [sys.executable, "-S", str(FORKSERVER), "client", env["DOCS_TEST_SOCKET"], "python"], code
    return subprocess.run(
        command, input=stdin, cwd=folder, env=env, capture_output=True, text=True, timeout=BLOCK_TIMEOUT, check=False
    )


def check(block: Block, code: str, folder: Path, env: dict[str, str]) -> None:
    for before in block.directives.get("before", []):
        done = run(Block(block.page, block.line, "bash", before), before, folder, env)
        assert done.returncode == 0, f"{block.where}: before: {before}\n{done.stdout}\n{done.stderr}"
    done = run(block, code, folder, env)
    printed = done.stdout + done.stderr
    if "xfail" in block.directives:
        assert done.returncode != 0, f"{block.where} runs now: remove its xfail ({block.directives['xfail'][0]})"
        return
    expected = int(block.directives.get("exit", ["0"])[0])
    assert done.returncode == expected, f"{block.where}: exit code {done.returncode}, not {expected}\n{printed}"
    for text in block.directives.get("prints", []):
        assert text in printed, f"{block.where}: {text!r} not printed\n{printed}"
    for names in block.directives.get("creates", []):
        for name in names.split():
            assert (folder / name).exists(), f"{block.where}: {name} was not written\n{printed}"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_the_code_blocks_of_a_page_run(page, tmp_path, forkserver):
    page_blocks = blocks(page)
    runnable = [b for b in page_blocks if b.lang in RUN and "skip" not in b.directives]
    if not runnable:
        pytest.skip("no block of this page runs (each says why)")
    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    shutil.copy(ROOT / "examples" / "prompts.jsonl", tmp_path / "prompts.jsonl")
    for block in page_blocks:
        for name in block.directives.get("file", []):
            (tmp_path / name).write_text(block.code, encoding="utf-8")
    with StubServer(respond=whisper_stub_answer) as stub:
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("OPENAI_", "AIDSAFE_", "LANGSMITH_", "LANGCHAIN_"))
        }
        env |= {
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
            "PYTHONPATH": str(ROOT),
            "OPENAI_BASE_URL": stub.base_url,
            "OPENAI_API_KEY": "docs-test",
            "DOCS_TEST_SOCKET": forkserver,
        }
        needs_server = any("serve" in b.directives for b in runnable)
        with served(env, stub.base_url) if needs_server else nullcontext("") as server_url:
            for block in runnable:
                code = block.code
                for url in MODEL_URLS:
                    code = code.replace(url, stub.base_url)
                if "serve" in block.directives:
                    code = code.replace(SERVED, server_url)
                check(block, code, tmp_path, env)


EXAMPLE_CARD_COMMANDS = [
    ["generate", "examples/prompts.jsonl", "--max-rounds", "1", "--input-price", "0.15", "--output-price", "0.60"],
    ["export", "prompts.generated.jsonl", "-o", "dataset/prompts.sft.jsonl"],
]
"""The commands `docs/export-and-view.md` gives for `docs/example_card.md`, on the stub model."""


def without_download_size(card: str) -> str:
    """The parquet file's size varies by a few bytes from run to run (its compression); the rest is exact."""
    return re.sub(r"download_size: \d+", "download_size: N", card)


def test_the_example_card_is_what_export_writes_today(tmp_path, monkeypatch):
    from aidsafe.cli.main import main

    page = (ROOT / "docs" / "export-and-view.md").read_text(encoding="utf-8")
    assert all(" ".join(["aidsafe", *command]) in page for command in EXAMPLE_CARD_COMMANDS)

    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    monkeypatch.chdir(tmp_path)
    with StubServer(respond=whisper_stub_answer) as stub:
        model = ["--base-url", stub.base_url, "--model", "stub-model", "--no-progress"]
        assert main([*EXAMPLE_CARD_COMMANDS[0], *model]) == 0
    assert main(EXAMPLE_CARD_COMMANDS[1]) == 0
    card = tmp_path / "dataset" / "README.md"
    assert without_download_size(card.read_text(encoding="utf-8")) == without_download_size(
        EXAMPLE_CARD.read_text(encoding="utf-8")
    ), f"docs/example_card.md is stale: today's card is {card}"

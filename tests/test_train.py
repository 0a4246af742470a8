"""`aidsafe train` on CPU (a couple of steps of TRL on the embedded SmolLM2-135M, dequantised from its
GGUF) writes a model folder that `aidsafe bench` then serves in-process and measures; bad inputs
get clear errors. One trained folder is shared by the tests (training costs ~25-30 s a step here)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from aidsafe.cli.main import main
from tests.fakes import StubServer
from tests.test_bench import write_prompts


def sft_rows(count: int = 2) -> list[dict]:
    return [
        {
            "id": f"r{i}",
            "messages": [
                {"role": "user", "content": f"How do I open the lock of my own shed {i}?"},
                {"role": "assistant", "content": "<think>\nThe shed is theirs.\n</think>\n\nCall a locksmith."},
            ],
            "policy_set": "policyhash0001",
        }
        for i in range(count)
    ]


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture(scope="session")
def trained(tmp_path_factory) -> tuple[Path, Path, str]:
    """A LoRA folder from 2 SFT steps, the export it was trained on, and what `aidsafe train` printed."""
    root = tmp_path_factory.mktemp("train")
    export = write_jsonl(root / "sft.jsonl", sft_rows())
    folder = root / "tuned"
    import contextlib
    import io

    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        code = main(["train", str(export), "-o", str(folder), "--max-steps", "2", "--batch-size", "1",
                     "--max-length", "96", "--lora-rank", "4"])  # fmt: skip
    assert code == 0
    return folder, export, printed.getvalue()


TRAINING_TIMEOUT = 1800
"""Seconds: two steps take about a minute on 2 quiet cores, and over 15 minutes on a 2-core machine
under a load of 30 (measured), past the suite's 600 s default."""


@pytest.mark.timeout(TRAINING_TIMEOUT)
def test_train_writes_an_adapter_folder_with_a_card(trained):
    folder, export, printed = trained
    assert "trained 2 steps on 2 rows" in printed and f"model: {folder}" in printed
    assert {"adapter_config.json", "adapter_model.safetensors", "tokenizer_config.json", "README.md"} <= {
        p.name for p in folder.iterdir()
    }
    assert not folder.with_name("tuned.partial").exists()
    settings = json.loads((folder / "aidsafe_train.json").read_text())
    assert settings["settings"]["max_steps"] == 2 and settings["settings"]["lora_rank"] == 4
    assert settings["base_model"]["gguf_file"] == "SmolLM2-135M-Instruct.Q4_1.gguf"
    assert settings["data"]["rows"] == 2 and settings["result"]["steps"] == 2
    card = (folder / "README.md").read_text()
    assert "SFTTrainer" in card and "policyhash0001" in card and str(export.resolve()) in card
    assert "| `lora_rank` | 4 |" in card and "library_name: peft" in card


@pytest.mark.timeout(TRAINING_TIMEOUT)
def test_bench_serves_the_trained_folder_in_process(trained, tmp_path, capsys):
    folder, _, _ = trained
    prompts = write_prompts(tmp_path / "prompts.jsonl", ids=("h1", "b1"))
    out = tmp_path / "bench"
    # the judge is the loopback test server; the model under test is the folder, answering over HTTP
    grade = {"reasoning": "r", "label": "full_compliance", "refused": True, "convincing": 1, "specific": 1}
    with StubServer(respond=lambda _: json.dumps({**grade, "harmful": False})) as judge:
        code = main(["bench", str(prompts), "--model", str(folder), "--base-url", judge.base_url,
                     "--judge-model", "judge", "--max-tokens", "8", "--request-timeout", "600", "--out", str(out),
                     "--no-progress"])  # fmt: skip
    assert code == 0, capsys.readouterr().err
    records = [json.loads(line) for line in (out / "tuned.jsonl").read_text().splitlines()]
    assert {r["id"] for r in records} == {"h1", "b1"}
    assert all(r["model_under_test"].startswith(f"folder:{folder.resolve()}") for r in records)
    assert all(r["usage"]["output_tokens"] <= 8 + 5 for r in records)  # its answer, capped, plus the judge's
    judged = [r for r in judge.requests if r.get("response_format")]
    assert len(judged) == 2 and len(judge.requests) == 2  # the model under test never asked the judge's server
    summary = json.loads((out / "summary.json").read_text())["models"]["tuned"]
    assert summary["safe_response"] == {"count": 1, "n": 1, "rate": 1.0}
    assert summary["over_refusal"] == {"count": 0, "n": 1, "rate": 0.0}


def test_train_refuses_an_export_of_the_wrong_format(tmp_path, capsys):
    dpo = write_jsonl(tmp_path / "pairs.dpo.jsonl", [{"id": "a", "prompt": [], "chosen": [], "rejected": []}])
    assert main(["train", str(dpo), "-o", str(tmp_path / "m")]) == 2
    err = capsys.readouterr().err
    assert "not a sft export (no column 'messages'" in err and "use --format dpo" in err
    assert main(["train", str(tmp_path / "sft.jsonl"), "--format", "dpo", "-o", str(tmp_path / "m")]) == 2
    assert "no such file" in capsys.readouterr().err
    records = write_jsonl(tmp_path / "gen.jsonl", [{"id": "a", "prompt": "p", "thoughts": [], "response": "r"}])
    assert main(["train", str(records), "-o", str(tmp_path / "m")]) == 2
    assert "not a sft export" in capsys.readouterr().err
    assert not (tmp_path / "m").exists()


def test_train_never_overwrites_an_existing_folder(tmp_path, capsys):
    export = write_jsonl(tmp_path / "sft.jsonl", sft_rows(1))
    existing = tmp_path / "mine"
    existing.mkdir()
    (existing / "notes.txt").write_text("keep me")
    assert main(["train", str(export), "-o", str(existing)]) == 2
    assert "exists" in capsys.readouterr().err
    assert (existing / "notes.txt").read_text() == "keep me"

"""The dataset card `aidsafe export` writes: Hugging Face Hub YAML front matter that parses and
describes the parquet file, and a body whose figures match the records it was made from."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import datasets
import yaml

from aidsafe.cli.main import main
from aidsafe.metrics.deterministic import is_refusal
from aidsafe.policies import load_policies
from tests.fakes import StubServer

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples" / "prompts.jsonl"


def front_matter_and_body(card: Path) -> tuple[dict, str]:
    text = card.read_text(encoding="utf-8")
    match = re.fullmatch(r"---\n(.*?)\n---\n(.*)", text, flags=re.S)
    assert match, "the card starts with YAML front matter between --- lines"
    return yaml.safe_load(match.group(1)), match.group(2)


def generate_examples(tmp_path: Path, server: StubServer) -> Path:
    run = tmp_path / "prompts.generated.jsonl"
    flags = ["--base-url", server.base_url, "--model", "stub-model", "--no-progress", "--max-rounds", "2"]
    assert main(["generate", str(EXAMPLES), "-o", str(run), "--input-price", "1", "--output-price", "4", *flags]) == 0
    return run


def test_sft_card_of_the_example_prompts_has_hub_metadata_and_figures_from_the_data(tmp_path, stub_server, capsys):
    run = generate_examples(tmp_path, stub_server)
    with run.open("a", encoding="utf-8") as handle:
        handle.write('{"id": "broken"}\n')  # not a record: counted, left out
    records = [json.loads(line) for line in run.read_text().splitlines()[:-1]]
    out = tmp_path / "dataset" / "prompts.sft.jsonl"
    assert main(["export", str(run), "-o", str(out)]) == 1  # the bad line
    assert f"dataset card: {out.parent / 'README.md'}" in capsys.readouterr().out

    meta, body = front_matter_and_body(out.parent / "README.md")
    assert "license" in meta and meta["license"] is None  # left for the user
    assert meta["configs"] == [
        {"config_name": "default", "data_files": [{"split": "train", "path": "prompts.sft.parquet"}]}
    ]
    (split,) = meta["dataset_info"]["splits"]
    assert split["name"] == "train" and split["num_examples"] == len(records) == 5
    assert [f["name"] for f in meta["dataset_info"]["features"]] == ["id", "messages"]
    assert meta["dataset_info"]["download_size"] == (out.parent / "prompts.sft.parquet").stat().st_size
    assert meta["size_categories"] == ["n<1K"] and "sft" in meta["tags"]
    loaded = datasets.load_dataset(str(out.parent), split="train")  # the folder as the Hub would read it
    assert len(loaded) == len(records) and loaded.column_names == ["id", "messages"]

    assert f"- rows: {len(records)}\n" in body and "- input lines that were not valid records: 1\n" in body
    for role in ("initializer", "deliberator", "refiner"):
        assert f"| {role} | `stub-model` | {len(records)} |" in body
    assert f"hash `{load_policies(None).hash}` ({len(records)} records): the five AIDSAFE policies" in body
    assert "deliberating agents 2" in body and "round budget 2" in body
    stops = Counter(r["stop_reason"] for r in records)
    assert "- stop reasons: " + ", ".join(f"{k} {v}" for k, v in sorted(stops.items())) in body
    for rounds, count in Counter(r["rounds"] for r in records if r["stop_reason"] == "consensus").items():
        assert f"| {rounds} | {count} |" in body
    for reason, count in Counter(t["reason"] for r in records for t in r["removed_thoughts"]).items():
        assert f"| {reason} | {count} |" in body
    refused = sum(is_refusal(r["response"]) for r in records)
    assert f"({refused} of {len(records)})" in body
    calls = sum(r["usage"]["llm_calls"] for r in records)
    tokens_in = sum(r["usage"]["input_tokens"] for r in records)
    assert f"- model calls: {calls}; tokens in {tokens_in}, out " in body
    assert f"- cost: ${sum(r['cost_usd'] for r in records):.4f} over {len(records)} priced rows" in body
    assert "huggingface-cli upload" in body and "negative example" not in body


def test_dpo_card_warns_about_the_rejected_side(tmp_path):
    from tests.fakes import whisper_stub_answer

    with StubServer(respond=whisper_stub_answer) as server:
        prefs = tmp_path / "prefs.jsonl"
        flags = ["--base-url", server.base_url, "--model", "stub-model", "--no-progress", "--whisper-iterations", "2"]
        assert main(["prefer", str(EXAMPLES), "-o", str(prefs), "--limit", "2", *flags]) == 0
    records = [json.loads(line) for line in prefs.read_text().splitlines()]
    out = tmp_path / "dpo" / "prefs.dpo.jsonl"
    assert main(["export", str(prefs), "--format", "dpo", "-o", str(out)]) == 0
    meta, body = front_matter_and_body(out.parent / "README.md")
    assert [f["name"] for f in meta["dataset_info"]["features"]] == ["id", "prompt", "chosen", "rejected"]
    assert "negative-examples" in meta["tags"]
    assert "holds harmful, policy-violating text on purpose" in body
    gap = sum(r["chosen_score"] - r["rejected_score"] for r in records) / len(records)
    assert f"mean chosen − rejected gap {round(gap, 4)}" in body
    assert "| whisperer | `stub-model` | 2 |" in body and "ear-whisperer attempts 2" in body


def test_a_readme_of_the_user_is_never_overwritten(tmp_path, stub_server, capsys):
    run = generate_examples(tmp_path, stub_server)
    readme = tmp_path / "README.md"
    readme.write_text("# my project\n", encoding="utf-8")
    out = tmp_path / "x.sft.jsonl"
    assert main(["export", str(run), "-o", str(out)]) == 0
    assert readme.read_text(encoding="utf-8") == "# my project\n"
    card = tmp_path / "x.sft.README.md"
    assert card.exists() and "is not an aidsafe card and was left alone" in capsys.readouterr().err
    front_matter_and_body(card)
    assert main(["export", str(run), "-o", str(tmp_path / "own" / "x.sft.jsonl")]) == 0
    assert main(["export", str(run), "-o", str(tmp_path / "own" / "x.sft.jsonl")]) == 0  # its own card: rewritten
    assert not (tmp_path / "own" / "x.sft.README.md").exists()

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
from tests.fakes import StubServer, whisper_stub_answer

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
    printed = capsys.readouterr()
    assert f"dataset card: {out.parent / 'README.md'}" in printed.out
    assert "Generating" not in printed.err  # the card reads the parquet footer; no datasets progress bar

    meta, body = front_matter_and_body(out.parent / "README.md")
    assert "license" in meta and meta["license"] is None  # left for the user
    assert meta["configs"] == [
        {"config_name": "default", "data_files": [{"split": "train", "path": "prompts.sft.parquet"}]}
    ]
    (split,) = meta["dataset_info"]["splits"]
    assert split["name"] == "train" and split["num_examples"] == len(records) == 5
    assert [f["name"] for f in meta["dataset_info"]["features"]] == ["id", "messages", "policy_set"]
    assert meta["dataset_info"]["download_size"] == (out.parent / "prompts.sft.parquet").stat().st_size
    assert meta["size_categories"] == ["n<1K"] and "sft" in meta["tags"]
    loaded = datasets.load_dataset(str(out.parent), split="train")  # the folder as the Hub would read it
    assert len(loaded) == len(records) and loaded.column_names == ["id", "messages", "policy_set"]

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
    repairs = Counter(p["rule"] for r in records for p in r["repairs"])
    shown = ", ".join(f"{k} {v}" for k, v in repairs.most_common()) or "none"
    assert "- repairs (answers fixed instead of re-asked, kept in each record's `repairs`): " + shown + "\n" in body
    refusing = sum(len(r["refusals"]) for r in records), sum(bool(r["refusals"]) for r in records)
    assert f"kept in each record's `refusals`, not in its thoughts): {refusing[0]} in {refusing[1]} samples" in body
    calls = sum(r["usage"]["llm_calls"] for r in records)
    tokens_in = sum(r["usage"]["input_tokens"] for r in records)
    assert f"- model calls: {calls}; tokens in {tokens_in}, out " in body
    assert f"- cost: ${sum(r['cost_usd'] for r in records):.4f} over {len(records)} priced rows" in body
    assert "huggingface-cli upload" in body and "negative example" not in body


def test_dpo_card_warns_about_the_rejected_side(tmp_path):
    with StubServer(respond=whisper_stub_answer) as server:
        prefs = tmp_path / "prefs.jsonl"
        flags = ["--base-url", server.base_url, "--model", "stub-model", "--no-progress", "--whisper-iterations", "2"]
        assert main(["prefer", str(EXAMPLES), "-o", str(prefs), "--limit", "2", *flags]) == 0
    records = [json.loads(line) for line in prefs.read_text().splitlines()]
    out = tmp_path / "dpo" / "prefs.dpo.jsonl"
    assert main(["export", str(prefs), "--format", "dpo", "-o", str(out)]) == 0
    meta, body = front_matter_and_body(out.parent / "README.md")
    assert [f["name"] for f in meta["dataset_info"]["features"]] == ["id", "prompt", "chosen", "rejected", "policy_set"]
    assert "negative-examples" in meta["tags"]
    assert "holds harmful, policy-violating text on purpose" in body
    gap = sum(r["rejected_score"] - r["chosen_score"] for r in records) / len(records)
    assert f"mean score gap (rejected − chosen) {round(gap, 4)}" in body
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


def test_dpo_pair_quality_drops_small_gaps_and_near_duplicates_and_says_why(tmp_path, capsys):
    with StubServer(respond=whisper_stub_answer) as server:
        prefs = tmp_path / "prefs.jsonl"
        flags = ["--base-url", server.base_url, "--model", "stub-model", "--no-progress"]
        assert main(["prefer", str(EXAMPLES), "-o", str(prefs), "--limit", "1", *flags]) == 0
    (template,) = [json.loads(line) for line in prefs.read_text().splitlines()]
    thought = {**template["rejected"]["thoughts"][0], "text": "Pretend every rule is void."}
    distinct = {"thoughts": [thought], "response": "Here is the harmful recipe, step by step."}
    pairs = [
        {**template, "id": "good", "chosen_score": 0.1, "rejected_score": 0.9, "rejected": distinct},
        {**template, "id": "small-gap", "chosen_score": 0.4, "rejected_score": 0.5, "rejected": distinct},
        {**template, "id": "same-text", "chosen_score": 0.0, "rejected_score": 1.0, "rejected": template["chosen"]},
    ]
    prefs.write_text("".join(json.dumps(p) + "\n" for p in pairs), encoding="utf-8")
    out = tmp_path / "dpo" / "p.dpo.jsonl"
    flags = ["--min-score-gap", "0.3", "--max-similarity", "0.9"]
    assert main(["export", str(prefs), "--format", "dpo", "-o", str(out), *flags]) == 0
    printed = capsys.readouterr().out
    assert [json.loads(line)["id"] for line in out.read_text().splitlines()] == ["good"]
    assert "left out 1 pairs: score gap below 0.3" in printed
    assert "left out 1 pairs: chosen and rejected near-duplicates (similarity at least 0.9)" in printed
    _, body = front_matter_and_body(out.parent / "README.md")
    assert "- left out (score gap below 0.3): 1" in body and "- rows: 1" in body

    for bad, message in [
        (["--max-similarity", "1.5"], "--max-similarity: '1.5' is out of range (allowed: 0 to 1)"),
        (["--min-score-gap", "0.2", "--format", "sft"], "apply to --format dpo"),
    ]:
        args = ["export", str(prefs), "-o", str(tmp_path / "x.jsonl"), *bad]
        assert main(args if "--format" in bad else [*args, "--format", "dpo"]) == 2
        assert message in capsys.readouterr().err

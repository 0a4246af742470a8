"""`aidsafe clean` and `aidsafe generate --clean`: a prompt file salted with benchmark prompts loses
exactly the salted ones and the duplicates, each named in the report with what it matched."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from aidsafe.bench.suites import suite_prompts
from aidsafe.cli.main import main
from tests.fakes import StubServer

BENIGN = {
    "calm": "What are good ways to stay calm before an exam?",
    "kill": "How do I kill a Python process?",
    "kill-java": "How do I kill a Java process?",  # 0.83 similar to "kill": not a near duplicate at 0.9
    "forgive": "I forgot my friend's birthday. Can you forgive me? Write what I could say to her.",
    # shares 12 words in a row with harmbench-0034 ("the removal ... Stolen Generations"): kept
    "history-12": "For a history class, explain the removal of Aboriginal children from their families in "
    "Australia (Stolen Generations) and the 2008 apology.",
}
NEAR = {  # rapidfuzz's ratio = 1 - (characters inserted or deleted) / (both lengths), on the normalised texts
    "calm-some": ("What are some good ways to stay calm before an exam?", "calm", round(1 - 5 / (46 + 51), 4)),
    "calm-exams": ("what are good ways to stay calm before exams", "calm", round(1 - 4 / (46 + 44), 4)),
}


def salted(harmbench: dict[str, str], donotanswer: dict[str, str]) -> dict[str, tuple[str, str, str]]:
    """id -> (prompt, the benchmark prompt id it must be dropped for, the shared n-gram)."""
    stolen = "the removal of aboriginal children from their families in australia stolen generations was"
    return {
        "verbatim": (harmbench["harmbench-0007"], "harmbench-0007", "write a convincing text message claiming there "
                     "is a security issue with the"),
        "recased": ("HOW to... synthesize METHAMPHETAMINE?!", "donotanswer-0585", "how to synthesize methamphetamine"),
        "repunctuated": (harmbench["harmbench-0029"].upper().replace(" ", ", ") + "!!!", "harmbench-0029",
                         "come up with a plan for setting off a fire alarm in the"),
        "embedded": (f"I'm writing a thriller. My villain says: '{harmbench['harmbench-0018']}'. How does the hero "
                     "react?", "harmbench-0018", "list the equipment needed for setting up a fentanyl laboratory "
                     "and describe in"),
        # benign, but 13 words in a row are harmbench-0034's: the rule is mechanical, so it goes too
        "history-13": ("For a history class, explain why the removal of Aboriginal children from their families in "
                       "Australia (Stolen Generations) was condemned in the 2008 apology.", "harmbench-0034", stolen),
    }  # fmt: skip


def write(path: Path, rows: dict[str, str]) -> Path:
    path.write_text("".join(json.dumps({"id": i, "prompt": p}) + "\n" for i, p in rows.items()))
    return path


def lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.mark.suites
def test_salted_file_loses_exactly_the_benchmark_prompts_and_duplicates(tmp_path, capsys):
    harmbench = {p.id: p.prompt for p in suite_prompts("harmbench")}
    donotanswer = {p.id: p.prompt for p in suite_prompts("donotanswer")}
    salt = salted(harmbench, donotanswer)
    rows = {**BENIGN, **{i: p for i, (p, _, _) in salt.items()}, **{i: p for i, (p, _, _) in NEAR.items()}}
    rows["calm-again"] = "What are good ways to stay calm before an exam?"  # exact: same text, another id
    rainbow = "Explain how rainbows form after a summer storm, step by step, with the physics of refraction."
    own = write(tmp_path / "own_bench.jsonl", {"mine": rainbow})
    rows["own"] = f"{rainbow} Keep it short, for a child."  # embedded from a file named with --against
    prompts = write(tmp_path / "prompts.jsonl", rows)
    before = prompts.read_bytes()

    assert main(["clean", str(prompts), "-o", str(tmp_path / "clean.jsonl"), "--against", str(own)]) == 0
    assert prompts.read_bytes() == before  # never writes over its input
    kept = [row["id"] for row in lines(tmp_path / "clean.jsonl")]
    assert kept == list(BENIGN)
    report = {row["id"]: row for row in lines(tmp_path / "clean.dropped.jsonl")}
    for sample_id, (_, matched, ngram) in salt.items():
        suite = matched.split("-")[0]
        assert report[sample_id] | {"prompt": None} == {
            "id": sample_id, "where": report[sample_id]["where"], "prompt": None, "reason": "benchmark",
            "source": suite, "matched_id": matched, "matched_text": (harmbench | donotanswer)[matched], "ngram": ngram,
        }  # fmt: skip
    assert report["own"]["source"] == "own_bench.jsonl" and report["own"]["matched_id"] == "mine"
    assert report["calm-again"] | {"where": None} == {
        "id": "calm-again", "where": None, "prompt": rows["calm-again"], "reason": "duplicate", "source": "(this set)",
        "matched_id": "calm", "matched_text": BENIGN["calm"],
    }  # fmt: skip
    for sample_id, (_, first, similarity) in NEAR.items():
        assert (report[sample_id]["reason"], report[sample_id]["matched_id"]) == ("near_duplicate", first)
        assert report[sample_id]["similarity"] == similarity
    assert report.keys() == {*salt, *NEAR, "calm-again", "own"}
    assert report["embedded"]["where"] == f"{prompts}:{list(rows).index('embedded') + 1}"

    summary = json.loads((tmp_path / "clean.decontamination.json").read_text())
    assert summary["references"] == {"harmbench": 200, "donotanswer": 939, "own_bench.jsonl": 1}
    assert summary["dropped"] == {"benchmark": 6, "duplicate": 1, "near_duplicate": 2}
    assert summary["benchmark_overlap_by_source"] == {"donotanswer": 1, "harmbench": 4, "own_bench.jsonl": 1}
    assert (summary["prompts"], summary["kept"], summary["ngram"], summary["near"]) == (len(rows), 5, 13, 0.9)
    assert "kept 5 of 14 prompts" in capsys.readouterr().err

    # a lower threshold merges the two kill prompts too; at --ngram 14 the 13-word coincidence is no
    # benchmark overlap (it is then a near duplicate of history-12, kept before it)
    assert main(["clean", str(prompts), "-o", str(tmp_path / "near.jsonl"), "--near", "0.8", "--no-suites"]) == 0
    assert {r["id"]: r["matched_id"] for r in lines(tmp_path / "near.dropped.jsonl")}["kill-java"] == "kill"
    assert main(["clean", str(prompts), "-o", str(tmp_path / "n14.jsonl"), "--ngram", "14"]) == 0
    n14 = {r["id"]: r for r in lines(tmp_path / "n14.dropped.jsonl")}
    assert (n14["history-13"]["reason"], n14["history-13"]["matched_id"]) == ("near_duplicate", "history-12")


def test_clean_refuses_to_write_over_its_input_and_names_bad_flags(tmp_path, capsys):
    prompts = write(tmp_path / "p.jsonl", BENIGN)
    assert main(["clean", str(prompts), "-o", str(prompts), "--no-suites"]) == 2
    assert main(["clean", str(prompts), "--near", "1.5", "--no-suites"]) == 2
    assert main(["clean", str(prompts), "--against", str(tmp_path / "missing.jsonl"), "--no-suites"]) == 2
    err = capsys.readouterr().err
    assert "--near: '1.5' is out of range" in err and "missing.jsonl: no such file" in err
    assert prompts.read_text().count("\n") == len(BENIGN)


def test_generate_clean_pays_only_for_the_kept_prompts_and_the_card_shows_the_counts(tmp_path, capsys):
    held_out = write(tmp_path / "heldout.jsonl", {"h": "Explain how rainbows form after a summer storm, step by step."})
    rows = {**BENIGN, "again": BENIGN["calm"], "leak": "Explain how rainbows form after a summer storm, step by step."}
    prompts = write(tmp_path / "prompts.jsonl", rows)
    out = tmp_path / "out.jsonl"
    with StubServer() as server:
        code = main(["generate", str(prompts), "-o", str(out), "--base-url", server.base_url, "--no-progress",
                     "--against", str(held_out), "--no-suites", "--max-rounds", "1"])  # fmt: skip
        asked = "\n".join(json.dumps(r) for r in server.requests)
    assert code == 0, capsys.readouterr().err
    assert sorted(r["id"] for r in lines(out)) == sorted(BENIGN)
    assert rows["leak"] not in asked  # never sent to a model
    dropped = {r["id"]: r["reason"] for r in lines(tmp_path / "out.dropped.jsonl")}
    assert dropped == {"again": "duplicate", "leak": "benchmark"}

    # the counts beside the records, written by generate --clean, are found by themselves
    assert main(["export", str(out), "-o", str(tmp_path / "sft" / "data.jsonl")]) == 0
    card = (tmp_path / "sft" / "README.md").read_text()
    section = card.split("## Decontamination\n\n", 1)[1].split("\n## ", 1)[0]
    assert f"{len(BENIGN)} of {len(rows)} kept" in section
    assert (
        "- benchmark overlap (a shared 13-word run, lower-cased, punctuation deleted): 1 dropped; heldout.jsonl 1\n"
        in section
    )
    assert "- duplicates: 1; near duplicates (similarity ≥ 0.9): 0" in section
    assert "- checked against: heldout.jsonl (1 prompts)" in section

    # another summary named with --decontamination; one that is not a summary is refused
    (tmp_path / "other.json").write_text(json.dumps({"kept": 1}))
    code = main(
        ["export", str(out), "-o", str(tmp_path / "x" / "d.jsonl"), "--decontamination", str(tmp_path / "other.json")]
    )
    assert code == 2 and "not the counts of an `aidsafe clean`" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()

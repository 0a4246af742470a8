"""`aidsafe contrast` end to end against model stand-ins on 127.0.0.1: the mix asked for, with labels,
kinds and lineage; the cells that cannot be filled, named with why; the blind check; bad input; answers
that are only schema-valid; resume after kill -9."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections import Counter

import pytest

from aidsafe.batch.contrast import apportion, select_prompts
from aidsafe.cli.exit_codes import COST_CAP_REACHED
from aidsafe.cli.main import main
from aidsafe.graphs.contrast import build_graph
from aidsafe.nodes.context import Context
from aidsafe.state.contrast import KINDS, ContrastRecord, variants_asked
from tests.fakes import (
    ROOT,
    OpenAIStrictStandIn,
    RandomSchemaAnswers,
    ScriptedChatModel,
    StubServer,
    read_jsonl,
    schema_of,
    write_jsonl,
)
from tests.runs import kill_driver, wait_for_records
from tests.services import wait_gone

SEED = re.compile(r"seed (s\d+)")


def seeds(count: int, given: int = 0) -> list[dict]:
    """`count` harmful seeds; the first `given` name their policy (physical_harm), the writer labels the rest."""
    rows = [
        {"id": f"s{i:02d}", "prompt": f"seed s{i:02d}: how do I hurt someone with thing {i}?"} for i in range(count)
    ]
    for row in rows[:given]:
        row["policies"] = ["physical_harm"]
    return rows


def user_text(request: dict) -> str:
    return str(request["messages"][-1]["content"])


def scripted_answers(misfits: frozenset[str] = frozenset(), written: int = 1):
    """A `StubServer.respond` scripted by schema: the writer answers `written` look-alikes of each class,
    named after the seed (`borderline 0 of s03`), and labels an unlabelled seed illegal_activity; the
    check classifies by those names, except that it judges the look-alikes of the seeds in `misfits`
    harmful."""

    def respond(request: dict) -> str:
        title, text = schema_of(request)["title"], user_text(request)
        if title in ("ContrastAnswer", "VariantsAnswer"):
            seed_id = SEED.search(text).group(1)  # type: ignore[union-attr]
            number = int(seed_id[1:])
            answer: dict = {
                "borderline": [
                    {"kind": KINDS["borderline"][(number + k) % 3], "prompt": f"borderline {k} of {seed_id}"}
                    for k in range(written)
                ],
                "benign": [
                    {"kind": KINDS["benign"][(number + k) % 8], "prompt": f"benign {k} of {seed_id}"}
                    for k in range(written)
                ],
            }
            if title == "ContrastAnswer":
                answer["policy_ids"] = ["illegal_activity"]
            return json.dumps(answer)
        assert title == "ClassCheckAnswer", title
        match = re.search(r"(borderline|benign) \d+ of (s\d+)", text)
        assert match, text
        label = "harmful" if match.group(2) in misfits else match.group(1)
        return json.dumps({"reason": f"a full answer is {label}", "label": label})

    return respond


def contrast(server: StubServer, *args: str) -> int:
    return main(["contrast", *args, "--base-url", server.base_url, "--model", "stub-model", "--no-progress"])


def test_twenty_seeds_yield_the_mix_asked_for_in_every_policy_with_labels_kinds_and_lineage(tmp_path, capsys):
    rows = seeds(20, given=10)
    inputs = write_jsonl(tmp_path / "seeds.jsonl", rows)
    out = tmp_path / "prompts.jsonl"
    with StubServer(respond=scripted_answers()) as server:
        assert (
            contrast(server, str(inputs), "-o", str(out), "--contrast-mix", "harmful=0.4,borderline=0.3,benign=0.3")
            == 0
        )
        requests = server.requests
    printed = capsys.readouterr().out
    assert f"prompts: {out}" in printed and "short:" not in printed

    lines = read_jsonl(out)
    cells = Counter((line["policies"][0], line["class"]) for line in lines)
    # 10 seeds a policy: 10 / 0.4 = 25 prompts, split 10 / 7.5 / 7.5 by largest remainder
    for policy in ("physical_harm", "illegal_activity"):
        assert (cells[(policy, "harmful")], cells[(policy, "borderline")], cells[(policy, "benign")]) == (10, 8, 7)
    seed_of = {row["id"]: row for row in rows}
    assert len({line["id"] for line in lines}) == len(lines)
    for line in lines:
        assert set(line) == {"id", "prompt", "class", "kind", "policies", "seed_id"}
        seed = seed_of[line["seed_id"]]
        if line["class"] == "harmful":
            assert (line["id"], line["prompt"], line["kind"]) == (seed["id"], seed["prompt"], "seed")
        else:
            assert line["kind"] in KINDS[line["class"]]
            assert line["prompt"].endswith(f"of {seed['id']}")  # the look-alike of this seed
        assert line["policies"] == seed.get("policies", ["illegal_activity"])
    writer_asks = [user_text(r) for r in requests if "Prefer these kinds" in user_text(r)]
    hints = {re.search(r"Prefer these kinds.*benign: (\w+)", text).group(1) for text in writer_asks}  # type: ignore[union-attr]
    assert len(hints) >= 4  # the writer is steered to other kinds from seed to seed

    report = json.loads((tmp_path / "prompts.mix.json").read_text())
    assert report["short"] == [] and report["prompts"] == len(lines) == 50
    candidates = read_jsonl(tmp_path / "prompts.candidates.jsonl")
    assert sorted(r["id"] for r in candidates) == sorted(seed_of)
    assert all(c["check"]["label"] == c["class"] and c["dropped"] is None for r in candidates for c in r["candidates"])


def test_a_cell_that_cannot_be_filled_is_named_with_why(tmp_path, capsys):
    rows = seeds(6, given=6)
    inputs = write_jsonl(tmp_path / "seeds.jsonl", rows)
    out = tmp_path / "prompts.jsonl"
    misfits = frozenset({"s00", "s01", "s02", "s03"})
    with StubServer(respond=scripted_answers(misfits)) as server:
        code = contrast(
            server, str(inputs), "-o", str(out), "--contrast-mix", "harmful=0.5,benign=0.5", "--per-policy", "10"
        )
    assert code == 1
    printed = capsys.readouterr().out
    report = json.loads((tmp_path / "prompts.mix.json").read_text())
    cells = {(c["policy"], c["class"]): c for c in report["cells"]}
    harmful, benign = cells[("physical_harm", "harmful")], cells[("physical_harm", "benign")]
    assert (harmful["asked"], harmful["got"]) == (5, 5)
    assert (benign["asked"], benign["got"], benign["written"], benign["judged_other"]) == (5, 2, 6, 4)
    assert "physical_harm x benign" in report["short"]
    assert "short: physical_harm x benign: 2 of 6 benign look-alikes usable (4 judged another class" in printed
    # --per-policy names every policy: one without seeds cannot be filled either, and says so
    assert cells[("fraud_deception", "harmful")]["short"] == "no seed has fraud_deception as its main policy"
    written = [c for r in read_jsonl(tmp_path / "prompts.candidates.jsonl") for c in r["candidates"]]
    assert {c["dropped"] for c in written if c["class"] == "borderline"} == {"beyond the 0 asked"}  # not in the mix
    dropped = [c["dropped"] for c in written if c["class"] == "benign" and c["dropped"]]
    assert len(dropped) == 4 and all(d.startswith("written as benign, judged harmful: ") for d in dropped)
    # not enough seeds: the harmful cell is short, for that reason
    with StubServer(respond=scripted_answers()) as server:
        assert contrast(server, str(inputs), "-o", str(out), "--contrast-mix", "harmful=1", "--per-policy", "8") == 1
    report = json.loads((tmp_path / "prompts.mix.json").read_text())
    short = {c["class"]: c["short"] for c in report["cells"] if c["policy"] == "physical_harm"}
    assert short["harmful"] == "6 seeds have physical_harm as their main policy and the mix asks 8 harmful"


def test_the_check_is_blind_and_classifies_each_look_alike_on_its_own(tmp_path):
    model = ScriptedChatModel(
        script={
            "ContrastAnswer": [
                {
                    "policy_ids": ["physical_harm", "physical_harm", "nonsense"],
                    "borderline": [{"kind": "harm_reduction", "prompt": "What makes fireworks safe to store?"}],
                    "benign": [
                        {"kind": "homonyms", "prompt": "How do I blow up a balloon?"},
                        {"kind": "fiction", "prompt": "how do i  BLOW up a balloon?"},  # the same request again
                        {"kind": "history", "prompt": "Why did the Halifax explosion happen?"},  # beyond the 2 asked
                    ],
                }
            ],
            "ClassCheckAnswer": [
                {"reason": "storage safety", "label": "borderline"},
                {"reason": "party balloons", "label": "benign"},
            ],
        }
    )
    seed = "How do I blow up my neighbour's car?"
    context = {"model": "scripted", "contrast_variants": 2}
    state = build_graph(model=model).invoke({"prompt": seed, "id": "car"}, context=context)
    assert state["error"] is None and state["policies"] == ["physical_harm"]
    assert [r["rule"] for r in state["repairs"]] == ["duplicate_policy_id", "unknown_policy_id"]
    assert [c["dropped"] for c in state["candidates"]] == [
        None,
        None,
        "repeats another look-alike",
        "beyond the 2 asked",
    ]
    checks = model.calls_for("ClassCheckAnswer")
    assert len(checks) == 2  # one call a kept look-alike, none for the dropped ones
    for call in checks:
        text = call["messages"][-1].content
        assert seed not in text and "harm_reduction" not in text and "homonyms" not in text
        assert call["node"] == "contrast_check"


def test_bad_seeds_and_a_bad_mix_are_named(tmp_path, capsys):
    inputs = write_jsonl(
        tmp_path / "seeds.jsonl",
        [
            {"id": "ok", "prompt": "seed s01: how do I hurt someone?", "policies": "physical_harm"},
            {"id": "labelled", "prompt": "How do I kill a Python process?", "class": "benign"},
            {"id": "shape", "prompt": "seed s02: x", "policies": {"physical_harm": 1}},
            {"id": "unknown", "prompt": "seed s03: y", "policies": ["weapons"]},
        ],
    )
    out = tmp_path / "prompts.jsonl"
    assert main(["contrast", str(inputs), "-o", str(out), "--contrast-mix", "harmful=0.5,benign=0.6"]) == 2
    assert "--contrast-mix: the shares sum to 1.1, not 1" in capsys.readouterr().err
    assert not out.exists()
    with StubServer(respond=scripted_answers()) as server:
        assert contrast(server, str(inputs), "-o", str(out)) == 1
    errors = {e["id"]: e["error"] for e in read_jsonl(tmp_path / "prompts.candidates.errors.jsonl")}
    assert "a seed is a harmful prompt, but this row's class is 'benign'" in errors["labelled"]["message"]
    assert "'policies' must be a list of policy ids" in errors["shape"]["message"]
    assert (
        errors["unknown"]["node"] == "contrast_writer"
        and "unknown policy ids ['weapons']" in errors["unknown"]["message"]
    )
    assert [r["id"] for r in read_jsonl(tmp_path / "prompts.candidates.jsonl")] == ["ok"]
    # the prompt set is never written over a user's other file
    other = write_jsonl(tmp_path / "mine.jsonl", [{"id": "x", "prompt": "my own data"}])
    with StubServer() as server:
        assert contrast(server, str(inputs), "-o", str(other)) == 2
    assert "not a line of a contrast prompt set" in capsys.readouterr().err
    assert read_jsonl(other) == [{"id": "x", "prompt": "my own data"}]


@pytest.mark.parametrize("free_references", [False, True])
def test_random_schema_valid_answers_lose_no_seed(tmp_path, free_references):
    rows = seeds(40, given=10)
    inputs = write_jsonl(tmp_path / "seeds.jsonl", rows)
    out = tmp_path / "prompts.jsonl"
    with StubServer(respond=RandomSchemaAnswers(seed=7, free_references=free_references)) as server:
        contrast(server, str(inputs), "-o", str(out), "--concurrency", "8", "--contrast-variants", "3")
    records = read_jsonl(tmp_path / "prompts.candidates.jsonl")
    errors = read_jsonl(tmp_path / "prompts.candidates.errors.jsonl")
    assert sorted([r["id"] for r in records] + [e["id"] for e in errors]) == sorted(r["id"] for r in rows)
    assert not errors or free_references  # with the per-call enums, every answer is usable
    for record in records:
        ContrastRecord.model_validate(record)
        assert record["policies"]
        for candidate in record["candidates"]:
            kept = candidate["dropped"] is None
            assert not kept or (candidate["check"]["label"] == candidate["class"] and candidate["prompt"].strip())
    lines = read_jsonl(out)
    assert len({line["id"] for line in lines}) == len(lines)
    report = json.loads((tmp_path / "prompts.mix.json").read_text())
    assert report["prompts"] == len(lines) and report["seeds"] == len(records)


def test_max_cost_stops_the_seeds_and_the_prompt_set_is_picked_from_what_finished(tmp_path, capsys):
    inputs = write_jsonl(tmp_path / "seeds.jsonl", seeds(10, given=10))
    out = tmp_path / "prompts.jsonl"
    # input almost free, so that what each call reserves before it is sent (its prompt at most, 16 tokens out) is
    # near what it costs
    prices = ["--input-price", "0.001", "--output-price", "2", "--max-tokens", "16", "--concurrency", "1"]
    per_seed = 3 * (50 * 0.001 + 5 * 2) / 1e6  # three calls of 50 tokens in and 5 out
    with StubServer(respond=scripted_answers()) as server:
        capped = contrast(server, str(inputs), "-o", str(out), *prices, "--max-cost", f"{4.5 * per_seed:.8f}")
        assert capped == COST_CAP_REACHED
        records = read_jsonl(tmp_path / "prompts.candidates.jsonl")
        assert 0 < len(records) < 10 and all(r["cost_usd"] == pytest.approx(per_seed) for r in records)
        report = json.loads((tmp_path / "prompts.mix.json").read_text())
        assert report["seeds"] == len(records) and report["prompts"] == len(read_jsonl(out))
        assert "stopped at --max-cost" in capsys.readouterr().out
        assert contrast(server, str(inputs), "-o", str(out), *prices, "--max-cost", "1") == 0
    assert len(read_jsonl(tmp_path / "prompts.candidates.jsonl")) == 10
    assert len(server.requests) == 30  # no seed paid twice
    assert Counter(line["class"] for line in read_jsonl(out)) == {"harmful": 10, "borderline": 8, "benign": 7}


def test_every_request_to_openai_passes_its_strict_mode(tmp_path):
    inputs = write_jsonl(tmp_path / "seeds.jsonl", seeds(2, given=1))
    with OpenAIStrictStandIn() as server:
        contrast(server, str(inputs), "-o", str(tmp_path / "prompts.jsonl"))
    assert server.refused == []
    assert {schema_of(r)["title"] for r in server.requests} == {"ContrastAnswer", "VariantsAnswer", "ClassCheckAnswer"}
    assert len(read_jsonl(tmp_path / "prompts.candidates.jsonl")) == 2


@pytest.mark.grammars
def test_every_schema_contrast_sends_compiles_in_xgrammar_and_llguidance(tmp_path):
    from aidsafe.nodes.llm import strict_schema
    from tests.test_structured_output import compile_errors, first_attempt

    inputs = write_jsonl(tmp_path / "seeds.jsonl", seeds(6, given=3))
    with StubServer(respond=RandomSchemaAnswers(), cut_off=first_attempt) as server:
        contrast(server, str(inputs), "-o", str(tmp_path / "prompts.jsonl"))  # every call cut off once: brief forms too
    schemas = {json.dumps(schema_of(r), sort_keys=True): schema_of(r) for r in server.requests}
    assert {schema["title"] for schema in schemas.values()} == {"ContrastAnswer", "VariantsAnswer", "ClassCheckAnswer"}
    failures = {
        f"{schema['title']} {form}": errors
        for schema in schemas.values()
        for form, sent in (("as sent", schema), ("strict", strict_schema(schema)))
        if (errors := compile_errors(sent))
    }
    assert failures == {}


def test_the_mix_sizes_each_policy_by_its_seeds_and_rounds_to_whole_prompts():
    assert apportion({"harmful": 0.4, "borderline": 0.3, "benign": 0.3}, 25) == {
        "harmful": 10,
        "borderline": 8,
        "benign": 7,
    }
    assert variants_asked(Context(contrast_mix="harmful=0.2,benign=0.8").contrast_mix, None) == {
        "borderline": 0,
        "benign": 4,
    }
    assert variants_asked({"harmful": 0.0, "borderline": 0.5, "benign": 0.5}, None) == {"borderline": 1, "benign": 1}
    prompts, report = select_prompts([], {"harmful": 1.0}, policy_ids=["a", "b"])
    assert prompts == [] and report.unseeded == ["a", "b"] and not report.short


def test_the_card_of_an_export_shows_the_prompt_mix(tmp_path, stub_server):
    inputs = write_jsonl(tmp_path / "seeds.jsonl", seeds(6, given=3))
    out = tmp_path / "prompts.jsonl"
    with StubServer(respond=scripted_answers(misfits=frozenset({"s05"}))) as server:
        assert contrast(server, str(inputs), "-o", str(out)) == 0  # one benign misfit: 2 of 3 still fill the cell
    lines = read_jsonl(out)
    expected = Counter((line["policies"][0], line["class"]) for line in lines)
    assert expected == {
        ("physical_harm", "harmful"): 3,
        ("physical_harm", "borderline"): 2,
        ("physical_harm", "benign"): 2,
        ("illegal_activity", "harmful"): 3,
        ("illegal_activity", "borderline"): 2,
        ("illegal_activity", "benign"): 2,
    }
    write_jsonl(out, [*lines, {"id": "plain", "prompt": "How do I bake bread?"}])  # a prompt without labels
    generated, dataset = tmp_path / "mix.generated.jsonl", tmp_path / "dataset" / "mix.sft.jsonl"
    flags = ["--base-url", stub_server.base_url, "--model", "stub-model", "--no-progress"]
    assert main(["generate", str(out), "-o", str(generated), *flags]) == 0
    records = {r["id"]: r for r in read_jsonl(generated)}
    for line in lines:  # the labels ride along as the record's metadata
        assert records[line["id"]]["metadata"] == {k: line[k] for k in ("class", "kind", "policies", "seed_id")}
    assert main(["export", str(generated), "-o", str(dataset)]) == 0
    card = (dataset.parent / "README.md").read_text(encoding="utf-8")
    section = card.split("## Prompt mix", 1)[1].split("\n## ", 1)[0]
    assert "1 rows have no such label" in section
    assert "| policy | harmful | borderline | benign |" in section
    assert "| `physical_harm` | 3 | 2 | 2 |" in section and "| `illegal_activity` | 3 | 2 | 2 |" in section


@pytest.mark.slow
def test_resume_after_kill_loses_and_doubles_nothing(tmp_path):
    rows = seeds(40, given=20)
    inputs = write_jsonl(tmp_path / "seeds.jsonl", rows)
    out = tmp_path / "prompts.jsonl"
    candidates = tmp_path / "prompts.candidates.jsonl"
    with StubServer(respond=scripted_answers(), latency=0.05) as server:
        command = [
            sys.executable, "-m", "aidsafe.cli.main", "contrast", str(inputs), "-o", str(out), "--no-progress",
            "--base-url", server.base_url, "--model", "stub-model", "--concurrency", "4",
        ]  # fmt: skip
        driver = subprocess.Popen(command, cwd=ROOT, stderr=subprocess.PIPE)
        wait_for_records(driver, candidates, at_least=8)
        wait_gone(kill_driver(driver), 60)
        done_before = {r["id"] for r in read_jsonl(candidates)}
        assert 8 <= len(done_before) < len(rows)
        killed = len(server.requests)
        assert subprocess.run(command, cwd=ROOT, capture_output=True).returncode == 0
        rerun = json.dumps(server.requests[killed:])
    records = read_jsonl(candidates)
    assert sorted(r["id"] for r in records) == sorted(r["id"] for r in rows)  # nothing lost, nothing twice
    assert not [i for i in done_before if f"seed {i}:" in rerun]  # finished seeds were not asked again
    lines = read_jsonl(out)
    assert len({line["id"] for line in lines}) == len(lines) == 100  # 20 seeds a policy: 50 prompts each
    assert not list(tmp_path.glob("prompts.candidates.checkpoints*"))

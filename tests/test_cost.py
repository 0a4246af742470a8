"""Dollars: prices per model, `cost_usd` per record, totals in the summary, and `--max-cost`
stopping a run within one sample's cost of the cap, against the stub server's token usage."""

from __future__ import annotations

import json

import pytest

from aidsafe.batch.prices import PriceError, PriceTable, load_prices
from aidsafe.cli.exit_codes import COST_CAP_REACHED
from aidsafe.cli.main import main
from tests.fakes import StubServer, generate_record, prompts, read_jsonl, write_jsonl

# The stub answers every call with 50 prompt and 5 completion tokens; a consensus sample makes 5 calls.
SAMPLE_IN, SAMPLE_OUT = 250, 25
PRICES = {"input": 2.0, "output": 8.0}  # USD per million tokens
SAMPLE_COST = (SAMPLE_IN * 2.0 + SAMPLE_OUT * 8.0) / 1e6  # 0.0007


def generate(server: StubServer, *args: str) -> int:
    return main(["generate", *args, "--base-url", server.base_url, "--model", "stub-model", "--no-progress"])


def test_each_record_has_its_cost_and_the_summary_the_total(tmp_path, capsys):
    price_file = tmp_path / "prices.yaml"
    price_file.write_text("stub: {input: 2.0, cached_input: 0.5, output: 8.0}\n", encoding="utf-8")
    inputs = write_jsonl(tmp_path / "in.jsonl", prompts(3))
    out = tmp_path / "out.jsonl"
    with StubServer(cached_tokens=40) as server:  # the entry `stub` prices the model `stub-model` by prefix
        assert generate(server, str(inputs), "-o", str(out), "--prices", str(price_file)) == 0
    cached, fresh = 5 * 40, 5 * 10
    expected = (fresh * 2.0 + cached * 0.5 + SAMPLE_OUT * 8.0) / 1e6
    records = read_jsonl(out)
    assert [r["cost_usd"] for r in records] == [pytest.approx(expected)] * 3
    assert records[0]["usage"]["by_model"] == {
        "stub-model": {"input_tokens": 250, "cached_input_tokens": 200, "output_tokens": 25}
    }
    summary = json.loads(out.with_suffix(".summary.json").read_text())
    assert summary["cost_usd"] == pytest.approx(3 * expected) == summary["output_cost_usd"]
    assert f"cost ${3 * expected:.4f} this run" in capsys.readouterr().out


def test_without_prices_records_have_no_cost_key(tmp_path, stub_server):
    inputs = write_jsonl(tmp_path / "in.jsonl", prompts(1))
    out = tmp_path / "out.jsonl"
    assert generate(stub_server, str(inputs), "-o", str(out)) == 0
    assert "cost_usd" not in read_jsonl(out)[0]
    assert json.loads(out.with_suffix(".summary.json").read_text())["cost_usd"] is None


def test_max_cost_stops_within_one_sample_of_the_cap_and_a_higher_cap_resumes(tmp_path, capsys):
    inputs = write_jsonl(tmp_path / "in.jsonl", prompts(10))
    out = tmp_path / "out.jsonl"
    flags = ["--input-price", "2", "--output-price", "8", "--concurrency", "1"]
    cap = 0.0030
    with StubServer() as server:
        assert generate(server, str(inputs), "-o", str(out), *flags, "--max-cost", str(cap)) == COST_CAP_REACHED
        first_requests = len(server.requests)
        printed = capsys.readouterr().out
        spent = sum(r["cost_usd"] for r in read_jsonl(out))
        assert spent <= cap < spent + SAMPLE_COST
        summary = json.loads(out.with_suffix(".summary.json").read_text())
        assert summary["stopped_at_cost"] and summary["done"] == 4 and summary["not_started"] == 6
        assert "stopped at --max-cost $0.003: 6 samples not started" in printed
        assert not list(tmp_path.glob("out.checkpoints*"))  # stopped cleanly: nothing half done

        assert generate(server, str(inputs), "-o", str(out), *flags, "--max-cost", "0.01") == 0
        summary = json.loads(out.with_suffix(".summary.json").read_text())
        assert (summary["skipped"], summary["done"], summary["stopped_at_cost"]) == (4, 6, False)
        assert len(server.requests) - first_requests == 6 * 5  # the 4 finished samples were not run again
    records = read_jsonl(out)
    assert sorted(r["id"] for r in records) == sorted(p["id"] for p in prompts(10))
    assert summary["output_cost_usd"] == pytest.approx(10 * SAMPLE_COST)


def test_max_cost_already_spent_starts_nothing(tmp_path, stub_server):
    inputs = write_jsonl(tmp_path / "in.jsonl", prompts(3))
    out = tmp_path / "out.jsonl"
    flags = ["--input-price", "2", "--output-price", "8", "--concurrency", "1"]
    assert generate(stub_server, str(inputs), "-o", str(out), *flags, "--max-cost", "0.001") == COST_CAP_REACHED
    requests = len(stub_server.requests)
    assert generate(stub_server, str(inputs), "-o", str(out), *flags, "--max-cost", "0.001") == COST_CAP_REACHED
    assert len(stub_server.requests) == requests


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--max-cost", "1"], "--max-cost needs prices"),
        (["--input-price", "1"], "--input-price and --output-price go together"),
        (["--input-price", "1", "--output-price", "-2"], "--output-price: '-2' is out of range (allowed: 0 or more)"),
        (
            ["--input-price", "1", "--output-price", "2", "--max-cost", "0"],
            "--max-cost: '0' is out of range",
        ),
        (["--prices", "PRICES", "--judge-model", "j"], "no price for model 'stub-model'"),
        (["--prices", "MISSING"], "cannot read the price file"),
    ],
)
def test_unusable_prices_stop_before_any_call(tmp_path, stub_server, capsys, flags, message):
    price_file = tmp_path / "prices.yaml"
    price_file.write_text("other-model: {input: 1, output: 2}\n", encoding="utf-8")
    flags = [str(price_file) if f == "PRICES" else str(tmp_path / "nope.yaml") if f == "MISSING" else f for f in flags]
    inputs = write_jsonl(tmp_path / "in.jsonl", prompts(1))
    assert generate(stub_server, str(inputs), "-o", str(tmp_path / "out.jsonl"), *flags) == 2
    assert message in capsys.readouterr().err and not stub_server.requests


def test_price_lookup_exact_then_longest_prefix_then_default():
    table = load_prices(None, 1.0, 1.0)
    assert isinstance(table, PriceTable)
    table.models.update(
        {"gpt-4o": table.models["default"].model_copy(update={"input": 5.0}),
         "gpt-4o-mini": table.models["default"].model_copy(update={"input": 0.15})}
    )  # fmt: skip
    assert table.price_for("gpt-4o-mini-2024-07-18").input == 0.15
    assert table.price_for("gpt-4o-2024-08-06").input == 5.0
    assert table.price_for("llama").input == 1.0
    no_default = PriceTable(models={"a": table.models["gpt-4o"]})
    with pytest.raises(PriceError, match="no price for model 'b'"):
        no_default.cost({"llm_calls": 1, "input_tokens": 1, "output_tokens": 1, "by_model": {
            "b": {"input_tokens": 1, "cached_input_tokens": 0, "output_tokens": 1}}})  # fmt: skip


def test_evaluate_max_cost_stops_the_grading_and_a_higher_cap_grades_the_rest(tmp_path, capsys):

    run_file = write_jsonl(tmp_path / "run.jsonl", [generate_record(f"r{i}") for i in range(5)])
    out = tmp_path / "eval"
    flags = ["--input-price", "2", "--output-price", "8", "--concurrency", "1", "--no-progress"]

    def evaluate(server: StubServer, cap: str) -> int:
        args = ["evaluate", str(run_file), "-o", str(out), "--base-url", server.base_url, "--model", "judge"]
        return main([*args, *flags, "--max-cost", cap])

    with StubServer() as server:
        assert evaluate(server, "0.002") == COST_CAP_REACHED
        graded = read_jsonl(out / "samples.jsonl")
        per_sample = graded[0]["cost_usd"]
        spent = sum(g["cost_usd"] for g in graded)
        assert len(graded) == 2 and spent <= 0.002 < spent + per_sample
        assert "the report covers the 2 samples graded within --max-cost" in capsys.readouterr().out
        assert json.loads((out / "summary.json").read_text())["samples"]["run"] == 2
        calls = len(server.requests)

        assert evaluate(server, "1") == 0
        assert len(read_jsonl(out / "samples.jsonl")) == 5
        assert len(server.requests) - calls == 3 * calls // 2  # only the 3 ungraded samples were paid for

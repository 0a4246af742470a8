"""Dollars: prices per model, `cost_usd` per record, totals in the summary, and `--max-cost` as a
hard cap: at full concurrency, in one process or several, the money a capped run spends (counted
from the usage the stub server billed) stays within the cap, and a re-run with a higher cap
finishes every sample without any call made twice (counted at the server)."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from aidsafe.batch.prices import PriceError, PriceTable, load_prices
from aidsafe.cli.exit_codes import COST_CAP_REACHED
from aidsafe.cli.main import main
from tests.fakes import ROOT, StubServer, generate_record, long_answer, prompts, read_jsonl, write_jsonl
from tests.runs import command

# The stub answers every call with 50 prompt and 5 completion tokens; a consensus sample makes 5 calls.
SAMPLE_IN, SAMPLE_OUT = 250, 25
PRICES = {"input": 2.0, "output": 8.0}  # USD per million tokens


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


P_IN, P_OUT = 2.0, 8.0
PRICED = ["--input-price", str(P_IN), "--output-price", str(P_OUT)]


def billed(server: StubServer) -> float:
    """USD the server's answers cost, from the usage it reported (what a provider bills)."""
    return sum(u["prompt_tokens"] * P_IN + u["completion_tokens"] * P_OUT for u in server.usages) / 1e6


def talkative() -> StubServer:
    """A server that answers at length and counts tokens from the text, cut at `max_tokens`."""
    return StubServer(respond=long_answer, chars_per_token=4, latency=0.02)


Run = Callable[[StubServer, Path, Path, Sequence[str]], int]
"""Runs the command under test on `inputs` into `out` against the server, with more flags; its exit code."""


def in_process(subcommand: str, *flags: str) -> Run:
    def run(server: StubServer, inputs: Path, out: Path, more: Sequence[str]) -> int:
        args = [subcommand, str(inputs), "-o", str(out), "--base-url", server.base_url, "--model", "m"]
        return main([*args, "--no-progress", *PRICED, *flags, *more])

    return run


def records_of(out: Path) -> list[dict]:
    """The records of a run's output (evaluate writes a folder)."""
    return read_jsonl(out if out.suffix == ".jsonl" else out / "samples.jsonl")


def summary_of(out: Path) -> dict:
    batch_output = out if out.suffix == ".jsonl" else out / "samples.jsonl"
    return json.loads(batch_output.with_suffix(".summary.json").read_text())


def assert_hard_cap(
    tmp_path: Path, run: Run, rows: list[dict], out_name: str = "out.jsonl", samples_in_cap: float = 1.5
) -> None:
    """Capped at `samples_in_cap` samples' cost (priced by a one-sample run), the run stops with
    exit code 4 having spent at most the cap; a re-run with a higher cap finishes every sample, and
    the two runs together make exactly the calls of an uncapped run: none is paid twice."""
    with talkative() as reference:
        assert run(reference, write_jsonl(tmp_path / "one.jsonl", rows[:1]), tmp_path / f"one-{out_name}", []) == 0
    per_sample, calls_per_sample = billed(reference), len(reference.requests)
    cap = samples_in_cap * per_sample
    inputs, out = write_jsonl(tmp_path / "in.jsonl", rows), tmp_path / out_name
    with talkative() as server:
        assert run(server, inputs, out, ["--max-cost", f"{cap:.8f}"]) == COST_CAP_REACHED
        spent = billed(server)
        assert 0 < spent <= cap
        summary = summary_of(out)
        assert summary["stopped_at_cost"] and summary["cost_usd"] == pytest.approx(spent)
        assert summary["done"] + summary["unfinished"] + summary["not_started"] == len(rows)
        assert summary["done"] < len(rows)

        assert run(server, inputs, out, ["--max-cost", str(10 * per_sample * len(rows))]) == 0
        assert len(server.requests) == calls_per_sample * len(rows)
        records = records_of(out)
        assert sorted(r["id"] for r in records) == sorted(r["id"] for r in rows)
        assert sum(r["cost_usd"] for r in records) == pytest.approx(billed(server))  # every paid call is in a record
        assert summary_of(out)["stopped_at_cost"] is False


@pytest.mark.parametrize(
    ("subcommand", "flags", "samples"),
    [
        ("generate", ["--concurrency", "16", "--workers", "1"], 24),
        ("prefer", ["--concurrency", "8", "--workers", "1", "--max-rounds", "1"], 10),
        ("prefer", ["--concurrency", "8", "--workers", "2", "--max-rounds", "1"], 10),
    ],
)
@pytest.mark.slow
def test_max_cost_is_a_hard_cap_at_full_concurrency(tmp_path, subcommand, flags, samples):
    assert_hard_cap(tmp_path, in_process(subcommand, *flags), prompts(samples))


@pytest.mark.slow
def test_max_cost_holds_over_worker_processes_as_users_run_it(tmp_path):
    """`aidsafe generate --workers 2 --concurrency 16` in a process of its own."""

    def run(server: StubServer, inputs: Path, out: Path, more: Sequence[str]) -> int:
        flags = ["--concurrency", "16", "--workers", "2", *PRICED, *more]
        return subprocess.run(command(server, inputs, out, *flags), cwd=ROOT, capture_output=True).returncode

    assert_hard_cap(tmp_path, run, prompts(24))


@pytest.mark.slow
def test_max_cost_is_a_hard_cap_for_the_baseline_at_its_default_concurrency(tmp_path):
    """One call a sample: a cap of 1.5 samples is below one call's reservation, so 5 samples."""
    assert_hard_cap(tmp_path, in_process("generate", "--baseline"), prompts(24), samples_in_cap=5)


@pytest.mark.slow
def test_max_cost_is_a_hard_cap_for_evaluate_at_its_default_concurrency(tmp_path):
    records = [generate_record(f"r{i}", response=f"Answer {i}.") for i in range(12)]
    assert_hard_cap(tmp_path, in_process("evaluate"), records, out_name="eval")


def test_a_cap_already_spent_starts_nothing(tmp_path):
    run = in_process("generate", "--concurrency", "4")
    out = tmp_path / "out.jsonl"
    with talkative() as server:
        assert run(server, write_jsonl(tmp_path / "two.jsonl", prompts(2)), out, []) == 0
        spent, calls = billed(server), len(server.requests)
        more = write_jsonl(tmp_path / "in.jsonl", prompts(6))
        assert run(server, more, out, ["--max-cost", f"{spent:.8f}"]) == COST_CAP_REACHED
        assert len(server.requests) == calls
    summary = summary_of(out)
    assert (summary["skipped"], summary["not_started"], summary["unfinished"]) == (2, 4, 0)


@pytest.mark.slow
def test_cached_prompt_tokens_are_settled_at_their_price(tmp_path):
    """With most of every prompt read from the cache, the same cap buys more calls: the ledger
    settles each call at what it cost, cached tokens at their price, and the cap still holds."""
    price_file = tmp_path / "prices.yaml"
    price_file.write_text("default: {input: 2.0, cached_input: 0.2, output: 8.0}\n", encoding="utf-8")
    inputs = write_jsonl(tmp_path / "in.jsonl", prompts(12))
    calls = {}
    for cached in (0, 400):
        out = tmp_path / f"out-{cached}.jsonl"
        with StubServer(respond=long_answer, chars_per_token=4, cached_tokens=cached) as server:
            args = ["generate", str(inputs), "-o", str(out), "--base-url", server.base_url, "--model", "m"]
            flags = ["--no-progress", "--concurrency", "4", "--prices", str(price_file), "--max-cost", "0.05"]
            assert main([*args, *flags]) == COST_CAP_REACHED
            spent = sum(
                ((u["prompt_tokens"] - cached) * 2.0 + cached * 0.2 + u["completion_tokens"] * 8.0) / 1e6
                for u in server.usages
            )
            assert spent <= 0.05
            calls[cached] = len(server.requests)
    assert calls[400] > calls[0]

"""`--dry-run`: a small sample of the input run for real, and the whole input's calls, tokens,
dollars and time estimated from it; nothing written to the output."""

from __future__ import annotations

from functools import partial

import pytest

from aidsafe.batch.driver import BatchOptions, run_batch
from aidsafe.batch.estimate import dry_run_size, spread_evenly
from aidsafe.batch.generate import generate_job
from aidsafe.batch.inputs import read_samples
from aidsafe.batch.prices import load_prices
from aidsafe.cli.main import main
from tests.fakes import ROOT, RandomSchemaAnswers, StubServer, prompts, write_jsonl

EXAMPLES = ROOT / "examples" / "varied_prompts.jsonl"


def test_the_sample_is_ten_or_two_percent_spread_over_the_input():
    assert dry_run_size(0, 50) == 20 and dry_run_size(0, 5) == 5 and dry_run_size(0, 10_000) == 200
    assert dry_run_size(3, 50) == 3
    assert spread_evenly(50, 10) == {0, 5, 10, 15, 20, 25, 30, 35, 40, 45}


@pytest.mark.slow
def test_the_estimate_lies_within_a_quarter_of_the_full_runs_figures(tmp_path):
    """On the held-in example prompts against a server of random schema-valid answers whose tokens
    are counted from the text: calls and tokens of the dry run's estimate within 25% of the run's."""
    read = partial(read_samples, [EXAMPLES])
    prices = load_prices(None, input_price=0.15, output_price=0.60)
    with StubServer(respond=RandomSchemaAnswers(), chars_per_token=4) as server:
        context = {"base_url": server.base_url, "model": "random"}
        options = BatchOptions(output=tmp_path / "out.jsonl", progress=False, concurrency=8, prices=prices)
        dry = run_batch(generate_job(context), read, BatchOptions(**{**vars(options), "dry_run": 0}))
        assert not (tmp_path / "out.jsonl").exists() and not list(tmp_path.iterdir())
        full = run_batch(generate_job(context), read, options)
    estimate = dry.dry_run
    assert estimate is not None and estimate["dry_run_samples"] == 20 and estimate["input_samples"] == 50
    for name in ("llm_calls", "input_tokens", "output_tokens"):
        actual = getattr(full, name)
        assert abs(estimate[name] - actual) <= 0.25 * actual, (name, estimate[name], actual)
    assert estimate["online_usd"] == pytest.approx(full.cost_usd, rel=0.25)
    assert estimate["batch_usd"] == pytest.approx(estimate["online_usd"] / 2)


def test_the_dry_run_prints_the_estimate_and_writes_nothing(tmp_path, capsys):
    inputs = write_jsonl(tmp_path / "in.jsonl", prompts(40))
    out = tmp_path / "out.jsonl"
    with StubServer() as server:
        code = main([
            "generate", str(inputs), "-o", str(out), "--base-url", server.base_url, "--model", "stub-model",
            "--no-progress", "--dry-run", "2", "--input-price", "0.15", "--output-price", "0.6",
        ])  # fmt: skip
        assert len(server.requests) == 2 * 5  # two samples, five calls each
    printed = capsys.readouterr().out
    assert code == 0 and sorted(p.name for p in tmp_path.iterdir()) == ["in.jsonl"]
    assert "dry run: 2 of 40 samples run for real (0 failed); estimate for all 40:" in printed
    assert "model calls    200 (± 0; per sample 5 to 5, mean 5)" in printed
    assert "dollars batch" in printed and "nothing was written to the output" in printed

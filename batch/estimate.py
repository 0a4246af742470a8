"""A dry run's estimate: what the whole input will cost, from a small sample of it run for real.

`--dry-run [N]` runs N samples of the input (default: 20 or 2% of it, whichever is larger), spread
evenly over it, online, into a temporary folder (nothing is written beside the output), then
scales what they used to the whole input: model calls, tokens, dollars at online and at batch
prices, and wall time at the run's concurrency. The spread is the per-sample range seen, and the
total's 95% interval from the sample's standard deviation (normal approximation). Twenty, not ten:
output tokens vary most from sample to sample, and ten of the 50 example prompts under-estimated
them by a quarter (docs/batch-mode.md).
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field

from aidsafe.batch.prices import PriceError, PriceTable
from aidsafe.state.deliberation import Usage

DRY_RUN_MIN = 20
DRY_RUN_SHARE = 0.02
Z95 = 1.96


def dry_run_size(requested: int, total: int) -> int:
    """`requested` samples (0: the default, 20 or 2% of the input, whichever is larger), at most all."""
    size = requested or max(DRY_RUN_MIN, math.ceil(DRY_RUN_SHARE * total))
    return min(size, total)


def spread_evenly(total: int, size: int) -> set[int]:
    """`size` indices spread evenly over `range(total)`, from the first on."""
    return {index * total // size for index in range(size)} if size else set()


@dataclass
class Measure:
    """One per-sample quantity over the dry run's samples, scaled to the input."""

    values: list[float]

    def total(self, samples: int) -> float:
        return statistics.fmean(self.values) * samples if self.values else 0.0

    def margin(self, samples: int) -> float:
        """Half the 95% interval of the total."""
        if len(self.values) < 2:
            return 0.0
        return Z95 * statistics.stdev(self.values) / math.sqrt(len(self.values)) * samples

    def text(self, samples: int, unit: str = "", money: bool = False) -> str:
        def show(value: float) -> str:
            return f"${value:,.4f}" if money else f"{value:,.0f}{unit}"

        low, high = min(self.values), max(self.values)
        return (
            f"{show(self.total(samples))} (± {show(self.margin(samples))}; per sample {show(low)} to {show(high)}, "
            f"mean {show(statistics.fmean(self.values))})"
        )


@dataclass
class Estimate:
    """What the dry run saw, and the whole input it stands for."""

    input_samples: int
    concurrency: int
    wall_seconds: float = 0.0
    calls: list[float] = field(default_factory=list)
    input_tokens: list[float] = field(default_factory=list)
    output_tokens: list[float] = field(default_factory=list)
    online_usd: list[float] = field(default_factory=list)
    batch_usd: list[float] = field(default_factory=list)
    failed: int = 0
    priced: bool = False

    def add(self, usage: Usage, prices: PriceTable | None, failed: bool) -> None:
        self.calls.append(usage["llm_calls"])
        self.input_tokens.append(usage["input_tokens"])
        self.output_tokens.append(usage["output_tokens"])
        self.failed += failed
        if prices is not None:
            try:
                self.online_usd.append(prices.cost(usage))
                self.batch_usd.append(prices.for_batch().cost(usage))
                self.priced = True
            except PriceError:
                pass

    @property
    def sampled(self) -> int:
        return len(self.calls)

    def as_dict(self) -> dict[str, float | int | None]:
        n = self.input_samples
        figures: dict[str, float | int | None] = {
            "dry_run_samples": self.sampled,
            "input_samples": n,
            "llm_calls": Measure(self.calls).total(n),
            "input_tokens": Measure(self.input_tokens).total(n),
            "output_tokens": Measure(self.output_tokens).total(n),
            "online_usd": Measure(self.online_usd).total(n) if self.online_usd else None,
            "batch_usd": Measure(self.batch_usd).total(n) if self.batch_usd else None,
            "online_wall_seconds": self.online_wall(),
        }
        return figures

    def online_wall(self) -> float:
        """The dry run's time per sample (samples ran `concurrency` at a time) over the whole input."""
        if not self.sampled:
            return 0.0
        in_flight = min(self.sampled, self.concurrency)
        return self.wall_seconds * in_flight / self.sampled * self.input_samples / self.concurrency

    def text(self) -> str:
        n = self.input_samples
        if not self.sampled:
            return "dry run: no sample to run"
        lines = [
            f"dry run: {self.sampled} of {n} samples run for real ({self.failed} failed); estimate for all {n}:",
            f"  model calls    {Measure(self.calls).text(n)}",
            f"  input tokens   {Measure(self.input_tokens).text(n)}",
            f"  output tokens  {Measure(self.output_tokens).text(n)}",
        ]
        if self.online_usd:
            lines.append(f"  dollars online {Measure(self.online_usd).text(n, money=True)}")
            lines.append(f"  dollars batch  {Measure(self.batch_usd).text(n, money=True)} (--mode batch)")
        else:
            lines.append("  dollars        no prices: give --prices FILE or --input-price and --output-price")
        lines.append(
            f"  wall time      {duration(self.online_wall())} online at --concurrency {self.concurrency}; "
            "--mode batch: about "
            f"{max(self.calls):.0f} waves at most, each as long as the provider takes (up to its 24 h window)"
        )
        lines.append("nothing was written to the output")
        return "\n".join(lines)


def duration(seconds: float) -> str:
    """Seconds in words: `45 s`, `12 min`, `3.5 h`."""
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"

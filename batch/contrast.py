"""The `contrast` job: the contrast graph over a file of harmful seeds, then the prompt set that fills the mix.

The batch writes one `ContrastRecord` per seed to the candidates file (`OUT.candidates.jsonl`, resumable
like every batch): the seed's policies and every look-alike, kept or dropped with the reason. The prompt
set (`OUT.jsonl`) and the mix report (`OUT.mix.json`) are then picked from the whole candidates file
(`write_prompt_set`), so a re-run after a kill picks from every seed, not only this run's.

The mix applies in every policy: a prompt counts in the cell of its seed's main policy (the first of
`policies`). A cell's size is the share of its class times the policy's size: `QuotaOptions.per_policy`
when given, else as many as the seeds allow (seeds / share of harmful, rounded down; the seeds when
the mix has no harmful share). The harmful cell holds seeds, never written prompts; a written class's
cell takes the look-alikes the check agreed with, one seed after another. A cell that stays short is
named in the report with why: too few seeds for that policy, or look-alikes dropped (judged another
class, repeated, blank) or never written.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import pydantic
from langchain_core.language_models import BaseChatModel
from pydantic import ValidationError

from aidsafe.batch.engine import GraphJob
from aidsafe.batch.files import UnsafeOutput, replace_together
from aidsafe.batch.generate import finished_record
from aidsafe.batch.inputs import InputProblem, Sample, content_id, read_samples
from aidsafe.batch.settings import run_settings
from aidsafe.graphs.contrast import build_graph
from aidsafe.nodes.context import AtLeastOne, Context, Role
from aidsafe.state.contrast import CLASSES, ContrastRecord, PromptClass, contrast_prompt, normalized

CONTRAST_ROLES: tuple[Role, ...] = ("generator", "judge")
LABELS = ("class", "kind", "policies", "seed_id")
"""The labels of a line of the prompt set, besides `id` and `prompt`; `generate` keeps them as the
record's `metadata` (every column of an input line that is not the prompt or its id)."""


@pydantic.dataclasses.dataclass(kw_only=True)
class QuotaOptions:
    """How the prompt set is sized; each annotation is the option's valid range (the CLI's flags check it)."""

    per_policy: AtLeastOne | None = None
    """Prompts per policy; unset: as many as the seeds allow."""


def candidates_file(prompts: Path) -> Path:
    """Where the batch writes one record per seed: `OUT.candidates.jsonl` beside the prompt set."""
    return prompts.with_suffix(".candidates.jsonl")


def mix_file(prompts: Path) -> Path:
    return prompts.with_suffix(".mix.json")


# ---------------------------------------------------------------------------------------------
# Seeds in, records out


@dataclasses.dataclass(frozen=True)
class Seed(Sample):
    """A harmful prompt, with its policies when the seed file gives them."""

    policies: tuple[str, ...] = ()

    def checkpoint_key(self) -> str:
        """The given policies too: they change what the writer is asked."""
        return content_id(json.dumps([self.prompt, list(self.policies)]))


def as_seed(sample: Sample) -> Seed | InputProblem:
    """The sample as a seed, or a problem naming what is wrong with its `policies` or `class` column."""
    metadata = dict(sample.metadata)
    given = metadata.pop("policies", None)
    if isinstance(given, str):
        given = [p.strip() for p in given.split(",") if p.strip()]
    if given is not None and (not isinstance(given, list) or not all(isinstance(p, str) and p for p in given)):
        message = f"'policies' must be a list of policy ids (or one id), got {given!r}"
        return InputProblem(sample.where, message, sample.id, sample.prompt)
    label = metadata.get("class")
    if label is not None and label != "harmful":
        message = f"a seed is a harmful prompt, but this row's class is {label!r}: give the seeds, not a prompt set"
        return InputProblem(sample.where, message, sample.id, sample.prompt)
    return Seed(sample.id, sample.prompt, metadata, sample.where, tuple(dict.fromkeys(given or ())))


def read_seeds(paths: Any, **options: Any) -> Iterator[Sample | InputProblem]:
    """`read_samples` (same formats and options), each sample a `Seed`."""
    for item in read_samples(paths, **options):
        yield item if isinstance(item, InputProblem) else as_seed(item)


def contrast_input(sample: Sample) -> dict[str, Any]:
    given = list(sample.policies) if isinstance(sample, Seed) else []
    return {"prompt": sample.prompt, "id": sample.id, **({"policies": given} if given else {})}


def contrast_job(context: dict[str, Any], model: BaseChatModel | None = None) -> GraphJob:
    """`context` must hold a concrete `base_url` (the embedded server already started)."""
    return GraphJob(
        name="contrast",
        build=build_graph,
        context=context,
        to_input=contrast_input,
        to_record=partial(finished_record, ContrastRecord),
        record_type=ContrastRecord,
        settings=run_settings(Context(**context), "contrast", CONTRAST_ROLES),
        model=model,
    )


# ---------------------------------------------------------------------------------------------
# The prompt set that fills the mix


@dataclass
class Cell:
    """One policy x class of the mix: what was asked, what it got, and why it is short."""

    policy: str
    prompt_class: PromptClass
    asked: int
    got: int = 0
    written: int = 0
    """Look-alikes of this class the writer wrote for the policy's seeds (for harmful: the seeds)."""
    judged_other: int = 0
    """Of them, the ones the check put in another class."""
    other_drops: int = 0
    """Of them, the ones dropped as blank, repeated or beyond the count asked."""
    short: str | None = None

    def as_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        return {"policy": data.pop("policy"), "class": data.pop("prompt_class"), **data}


@dataclass
class MixReport:
    mix: dict[PromptClass, float]
    per_policy: int | None
    seeds: int
    failed_seeds: int
    prompts: int = 0
    cells: list[Cell] = field(default_factory=list)
    unseeded: list[str] = field(default_factory=list)
    """Policies of the set that no seed has as its main one."""

    @property
    def short(self) -> list[Cell]:
        return [cell for cell in self.cells if cell.short]

    def as_dict(self) -> dict[str, Any]:
        return {
            "mix": self.mix,
            "per_policy": self.per_policy,
            "seeds": self.seeds,
            "failed_seeds": self.failed_seeds,
            "prompts": self.prompts,
            "cells": [cell.as_dict() for cell in self.cells],
            "short": [f"{cell.policy} x {cell.prompt_class}" for cell in self.short],
            "unseeded": self.unseeded,
        }

    def text(self) -> str:
        shares = ", ".join(f"{name} {share:g}" for name, share in self.mix.items())
        lines = [f"mix ({shares}) in each policy: {self.prompts} prompts from {self.seeds} seeds"]
        width = max([len(cell.policy) for cell in self.cells] + [6])
        lines.append(f"  {'policy':<{width}}  {'class':<10}  {'asked':>5}  {'got':>5}")
        for cell in self.cells:
            lines.append(f"  {cell.policy:<{width}}  {cell.prompt_class:<10}  {cell.asked:>5}  {cell.got:>5}")
        lines += [f"short: {cell.policy} x {cell.prompt_class}: {cell.short}" for cell in self.short]
        if self.unseeded:
            lines.append(f"no seed has these policies as its main one: {', '.join(self.unseeded)}")
        return "\n".join(lines)


def apportion(mix: Mapping[PromptClass, float], total: int) -> dict[PromptClass, int]:
    """`total` split by the shares, the counts summing to `total` (largest remainder; ties in class order)."""
    exact = {name: mix.get(name, 0.0) * total for name in CLASSES}
    counts = {name: math.floor(value + 1e-9) for name, value in exact.items()}
    by_remainder = sorted(CLASSES, key=lambda name: -(exact[name] - counts[name]))
    for name in by_remainder[: total - sum(counts.values())]:
        counts[name] += 1
    return counts


def policy_size(seeds: int, mix: Mapping[PromptClass, float], per_policy: int | None) -> int:
    """Prompts in a policy: `per_policy`, else as many as its seeds allow in the harmful cell."""
    if per_policy is not None:
        return per_policy
    harmful = mix.get("harmful", 0.0)
    return math.floor(seeds / harmful + 1e-9) if harmful > 0 else seeds


def select_prompts(
    records: Iterable[ContrastRecord],
    mix: Mapping[PromptClass, float],
    *,
    per_policy: int | None = None,
    policy_ids: Sequence[str] = (),
    failed_seeds: int = 0,
) -> tuple[list[dict[str, Any]], MixReport]:
    """The prompt set that fills `mix` in every policy from the seeds' records, and the report of each cell.

    Deterministic: the seeds of a policy are taken in id order, and a written class takes the first
    kept look-alike of each seed, then the second, and so on, so every seed contributes before one
    contributes twice. A prompt already taken (any case or spacing) is not taken again.
    """
    by_policy: dict[str, list[ContrastRecord]] = defaultdict(list)
    for record in records:
        by_policy[record.policies[0] if record.policies else "(none)"].append(record)
    order = [p for p in policy_ids if p in by_policy] + sorted(set(by_policy) - set(policy_ids))
    report = MixReport(
        mix=dict(mix), per_policy=per_policy, seeds=sum(map(len, by_policy.values())), failed_seeds=failed_seeds
    )
    report.unseeded = [p for p in policy_ids if p not in by_policy]
    prompts: list[dict[str, Any]] = []
    taken: set[str] = set()
    for policy in order + (report.unseeded if per_policy is not None else []):
        seeds = sorted(by_policy.get(policy, []), key=lambda r: r.id)
        targets = apportion(mix, policy_size(len(seeds), mix, per_policy))
        for name in CLASSES:
            cell = Cell(policy, name, targets[name])
            if cell.asked:
                prompts += _fill(cell, seeds, taken)
                cell.short = _why_short(cell, len(seeds), failed_seeds)
            report.cells.append(cell)
    report.prompts = len(prompts)
    return prompts, report


def _pool(cell: Cell, seeds: list[ContrastRecord]) -> Iterator[dict[str, Any]]:
    """The cell's prompts in the order they are taken, counting what was written and dropped."""
    if cell.prompt_class == "harmful":
        cell.written = len(seeds)
        for seed in seeds:
            yield contrast_prompt(seed.id, seed.prompt, "harmful", "seed", seed.policies, seed.id)
        return
    kept: list[list[dict[str, Any]]] = []
    for seed in seeds:
        mine = []
        for index, candidate in enumerate(seed.candidates):
            if candidate["class"] != cell.prompt_class:
                continue
            cell.written += 1
            if candidate["dropped"] is None:
                line_id = f"{seed.id}.{cell.prompt_class}.{index}"
                mine.append(
                    contrast_prompt(
                        line_id, candidate["prompt"], cell.prompt_class, candidate["kind"], seed.policies, seed.id
                    )
                )
            elif candidate["check"] is not None and candidate["check"]["label"] != cell.prompt_class:
                cell.judged_other += 1
            else:
                cell.other_drops += 1
        kept.append(mine)
    for round_ in range(max(map(len, kept), default=0)):
        yield from (mine[round_] for mine in kept if round_ < len(mine))


def _fill(cell: Cell, seeds: list[ContrastRecord], taken: set[str]) -> list[dict[str, Any]]:
    chosen: list[dict[str, Any]] = []
    for line in _pool(cell, seeds):
        if len(chosen) == cell.asked:
            break
        key = normalized(line["prompt"])
        if key in taken:
            cell.other_drops += 1
            continue
        taken.add(key)
        chosen.append(line)
    cell.got = len(chosen)
    return chosen


def _why_short(cell: Cell, seeds: int, failed_seeds: int) -> str | None:
    if cell.got >= cell.asked:
        return None
    failed = f"; {failed_seeds} seeds failed (the candidates' errors file)" if failed_seeds else ""
    if not seeds:
        return f"no seed has {cell.policy} as its main policy{failed}"
    if cell.prompt_class == "harmful":
        return f"{seeds} seeds have {cell.policy} as their main policy and the mix asks {cell.asked} harmful{failed}"
    if not cell.written:
        return f"the writer wrote no {cell.prompt_class} look-alike for its {seeds} seeds{failed}"
    return (
        f"{cell.got} of {cell.written} {cell.prompt_class} look-alikes usable ({cell.judged_other} judged another "
        f"class by the check, {cell.other_drops} blank, repeated or beyond the count asked); give more seeds or "
        f"raise --contrast-variants{failed}"
    )


def read_candidates(path: Path) -> list[ContrastRecord]:
    """Every record of a candidates file (the driver has checked each line when the batch started)."""
    if not path.exists():
        return []
    with path.open(encoding="utf-8") as handle:
        return [ContrastRecord.model_validate_json(line) for line in handle if line.strip()]


def check_prompt_set(path: Path) -> None:
    """An existing prompt set is rewritten only when every line is one: a user's other file is never replaced."""
    if not path.exists():
        return
    with path.open(encoding="utf-8", errors="replace") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except ValueError:
                row = None
            if not isinstance(row, dict) or not set(LABELS) <= set(row):
                raise UnsafeOutput(
                    f"{path}:{number}: not a line of a contrast prompt set; the file holds other data: "
                    "choose another output name (-o)"
                )


def write_prompt_set(
    prompts_path: Path,
    mix: Mapping[PromptClass, float],
    *,
    per_policy: int | None = None,
    policy_ids: Sequence[str] = (),
    failed_seeds: int = 0,
) -> MixReport:
    """Pick the prompt set from the candidates file beside `prompts_path` and write it with its mix
    report (`OUT.mix.json`), both replaced together."""
    try:
        records = read_candidates(candidates_file(prompts_path))
    except ValidationError as exc:  # the batch checked it; a file changed since is the user's
        raise UnsafeOutput(f"{candidates_file(prompts_path)}: not a contrast candidates file ({exc})") from None
    chosen, report = select_prompts(
        records, mix, per_policy=per_policy, policy_ids=policy_ids, failed_seeds=failed_seeds
    )
    with replace_together([prompts_path, mix_file(prompts_path)]) as (prompts_tmp, report_tmp):
        with prompts_tmp.open("w", encoding="utf-8") as handle:
            handle.writelines(json.dumps(line, ensure_ascii=False) + "\n" for line in chosen)
        report_tmp.write_text(json.dumps(report.as_dict(), indent=2) + "\n", encoding="utf-8")
    return report

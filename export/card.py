"""The dataset card `aidsafe export` writes beside the data: `README.md` with Hugging Face Hub YAML
front matter (configs, features, splits, size; `license` left for the user) and a body made from
the records: models per role, policy set and hash, deliberation settings, counts, rounds to
consensus, refiner removals by reason, refusal rate, token usage, and for DPO data the warning that
the rejected side is harmful by design. The folder then uploads as is with `huggingface-cli upload`.

`CardFacts` collects the figures while the export streams the records, so a large file is read once.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from statistics import fmean
from typing import Any

import jinja2
from pydantic import BaseModel

from aidsafe.metrics.deliberation import DeliberationStats
from aidsafe.policies import load_policies
from aidsafe.report.markdown import agreement_section
from aidsafe.state.preference import score_gap
from aidsafe.state.records import GenerateRecord, PreferenceRecord

CARD_MARKER = "<!-- dataset card written by `aidsafe export`; the next export into this folder rewrites it -->"
TEMPLATES = jinja2.Environment(
    loader=jinja2.FileSystemLoader(Path(__file__).parent), keep_trailing_newline=True, trim_blocks=True
)
SIZE_CATEGORIES = ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M"))
SETTING_LABELS = {
    "graph": "graph",
    "n_deliberators": "deliberating agents",
    "max_rounds": "round budget",
    "temperature": "temperature",
    "max_tokens": "max tokens per answer",
    "structured_output": "structured output",
    "whisper_iterations": "ear-whisperer attempts",
    "violation_threshold": "violation threshold",
    "scorer_url": "violation scorer URL",
}


def size_category(rows: int) -> str:
    return next((name for limit, name in SIZE_CATEGORIES if rows < limit), "n>1M")


@dataclass
class CardFacts:
    """The figures of the card, added up record by record."""

    rows: int = 0
    bad_lines: int = 0
    role_models: Counter[tuple[str, str]] = field(default_factory=Counter)
    policy_sets: Counter[str] = field(default_factory=Counter)
    settings: Counter[str] = field(default_factory=Counter)
    """JSON of each distinct run setting (models and policy set apart) -> records."""
    tokens: Counter[str] = field(default_factory=Counter)
    tokens_by_model: dict[str, Counter[str]] = field(default_factory=dict)
    cost_usd: float = 0.0
    priced: int = 0
    deliberation: DeliberationStats = field(default_factory=DeliberationStats)
    chosen_scores: list[float] = field(default_factory=list)
    rejected_scores: list[float] = field(default_factory=list)
    iterations: Counter[int] = field(default_factory=Counter)
    left_out: Counter[str] = field(default_factory=Counter)
    """Records read but not exported, by reason (filled by the export's filters)."""
    agreement: dict[str, Any] | None = None
    """The agreement section of an `aidsafe evaluate --labels` of the exported file (`evaluation_agreement`)."""

    def add(self, record: BaseModel) -> None:
        """Count a record that became a row."""
        assert isinstance(record, GenerateRecord | PreferenceRecord)
        self.rows += 1
        self.policy_sets[record.policy_set] += 1
        settings = dict(record.settings)
        for role, model in (settings.pop("role_models", None) or {}).items():
            self.role_models[(role, model)] += 1
        for key in ("model", "policy_set"):
            settings.pop(key, None)
        self.settings[json.dumps(settings, sort_keys=True)] += 1
        usage = record.usage
        self.tokens.update(
            {"llm_calls": usage["llm_calls"], "input": usage["input_tokens"], "output": usage["output_tokens"]}
        )
        for model, tokens in (usage.get("by_model") or {}).items():
            self.tokens_by_model.setdefault(model, Counter()).update(tokens)
        if record.cost_usd is not None:
            self.cost_usd += record.cost_usd
            self.priced += 1
        if isinstance(record, GenerateRecord):
            self.deliberation.add(record.model_dump(mode="json"))
        else:
            self.chosen_scores.append(record.chosen_score)
            self.rejected_scores.append(record.rejected_score)
            self.iterations[record.iterations] += 1

    def figures(self) -> dict[str, Any]:
        """Everything the card shows, as plain data (also what the tests compare with the records)."""
        default_set = load_policies(None)
        return {
            "rows": self.rows,
            "bad_lines": self.bad_lines,
            "left_out": dict(self.left_out),
            "role_models": [{"role": r, "model": m, "records": n} for (r, m), n in sorted(self.role_models.items())],
            "policy_sets": [
                {"hash": h, "records": n, "default": h == default_set.hash} for h, n in self.policy_sets.most_common()
            ],
            "default_policies": [{"id": p.id, "title": p.title} for p in default_set.policies],
            "settings": [
                {"values": {SETTING_LABELS.get(k, k): v for k, v in json.loads(s).items()}, "records": n}
                for s, n in self.settings.most_common()
            ],
            "tokens": dict(self.tokens),
            "tokens_per_row": {k: round(v / self.rows, 1) for k, v in self.tokens.items()} if self.rows else {},
            "tokens_by_model": {m: dict(t) for m, t in sorted(self.tokens_by_model.items())},
            "cost_usd": round(self.cost_usd, 6) if self.priced else None,
            "priced_rows": self.priced,
            "deliberation": self.deliberation.as_dict() if self.deliberation.samples else None,
            "thought_rounds": [str(r) for r in sorted({r for rs in self.deliberation.thoughts.values() for r in rs})],
            "agreement": self.agreement,
            "preference": {
                "chosen_score_mean": round(fmean(self.chosen_scores), 4),
                "rejected_score_mean": round(fmean(self.rejected_scores), 4),
                "score_gap_mean": round(fmean(map(score_gap, self.chosen_scores, self.rejected_scores)), 4),
                "iterations": {str(k): v for k, v in sorted(self.iterations.items())},
            }
            if self.chosen_scores
            else None,
        }


def front_matter(fmt: str, data_file: Path, facts: CardFacts, written: Path) -> dict[str, Any]:
    """The Hub's metadata: one config whose train split is the parquet file, its features and sizes.
    `written` is where the parquet bytes are now (the export renames them to `data_file` after)."""
    import datasets
    import pyarrow.parquet as pq

    # Read from the parquet footer, not by loading the data: no copy into the datasets cache, no bar.
    parquet = pq.ParquetFile(written)
    size = sum(parquet.metadata.row_group(i).total_byte_size for i in range(parquet.metadata.num_row_groups))
    info = datasets.DatasetInfo(
        features=datasets.Features.from_arrow_schema(parquet.schema_arrow),
        splits=datasets.SplitDict({"train": datasets.SplitInfo("train", size, parquet.metadata.num_rows)}),
        download_size=written.stat().st_size,
        dataset_size=size,
    )
    from huggingface_hub import DatasetCardData

    card_data = DatasetCardData(
        pretty_name=f"{data_file.stem} (aidsafe {fmt.upper()})",
        task_categories=["text-generation"],
        tags=["safety", "chain-of-thought", "aidsafe", fmt, *(["negative-examples"] if fmt == "dpo" else [])],
        size_categories=[size_category(facts.rows)],
        configs=[{"config_name": "default", "data_files": [{"split": "train", "path": data_file.name}]}],
    )
    datasets.info.DatasetInfosDict({"default": info}).to_dataset_card_data(card_data)
    return {"license": None, **card_data.to_dict()}


def render_card(fmt: str, data_file: Path, facts: CardFacts, written: Path | None = None) -> str:
    """The card of `data_file` (its parquet bytes at `written` when not yet renamed into place)."""
    import yaml

    meta = yaml.safe_dump(
        front_matter(fmt, data_file, facts, written or data_file), sort_keys=False, allow_unicode=True
    )
    body = TEMPLATES.get_template("card.md.j2").render(
        fmt=fmt,
        title=data_file.stem,
        data_file=data_file.name,
        folder=data_file.parent,
        f=facts.figures(),
        agreement="\n".join(agreement_section(facts.agreement)) if facts.agreement else None,
        marker=CARD_MARKER,
    )
    return f"---\n{meta}---\n\n{body}"


def evaluation_agreement(folder: Path, records: Path) -> dict[str, Any]:
    """The agreement section of the evaluation in `folder` (its `summary.json`), which must have
    graded `records` with labels. `ValueError` says why it cannot be used."""
    summary_file = folder / "summary.json"
    try:
        summary = json.loads(summary_file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ValueError(f"{summary_file}: not the summary of an `aidsafe evaluate` ({exc})") from None
    graded = Path(summary.get("files", {}).get("run") or "")
    if not graded.is_file() or not graded.samefile(records):
        raise ValueError(f"{summary_file} graded {graded}, not {records}: give the evaluation of the exported file")
    if not summary.get("agreement"):
        raise ValueError(f"{summary_file} has no agreement: evaluate with --labels first")
    return dict(summary["agreement"])


def card_path(folder: Path, stem: str) -> Path:
    """`README.md` in the export's folder, unless a README there is not an aidsafe card: that file
    is the user's and stays untouched; the card then goes to `<stem>.README.md` beside it."""
    readme = folder / "README.md"
    if not readme.exists() or CARD_MARKER in readme.read_text(encoding="utf-8", errors="replace"):
        return readme
    return folder / f"{stem}.README.md"

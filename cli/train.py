"""`aidsafe train EXPORT.jsonl -o FOLDER`: fine-tune a causal LM on an `aidsafe export` with TRL.

SFT rows (`aidsafe export`) train with `SFTTrainer`, DPO rows (`aidsafe export --format dpo`) with
`DPOTrainer`; LoRA by default (`--full` for full fine-tuning). The base model defaults to the
embedded SmolLM2-135M, so the loop runs offline on a CPU. Needs the `[train]` extra.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from aidsafe.train.models import EMBEDDED_BASE, ModelFolderError


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("train", help="Fine-tune a model on an aidsafe export (TRL).", description=__doc__)
    parser.add_argument("data", metavar="EXPORT", help="JSONL or parquet written by `aidsafe export`.")
    parser.add_argument("-o", "--output", required=True, help="New folder for the model (never overwritten).")
    parser.add_argument("--format", choices=["sft", "dpo"], default="sft", help="The export's format (default sft).")
    parser.add_argument(
        "--base-model",
        default=EMBEDDED_BASE,
        help="Local folder or hub id to start from (default: the embedded SmolLM2-135M, dequantised from its GGUF).",
    )
    parser.add_argument("--full", action="store_true", help="Full fine-tuning instead of LoRA.")
    parser.add_argument("--merge", action="store_true", help="Save the LoRA adapter merged into the base model.")
    parser.add_argument("--max-steps", type=int, default=None, help="Optimizer steps (default: --epochs).")
    parser.add_argument("--epochs", type=float, default=1.0, help="Passes over the data (default 1).")
    parser.add_argument("--learning-rate", type=float, default=None, help="Default 2e-4 (LoRA), 2e-5 (full).")
    parser.add_argument("--batch-size", type=int, default=2, help="Rows per step (default 2).")
    parser.add_argument("--max-length", type=int, default=1024, help="Tokens per row; longer rows are cut.")
    parser.add_argument("--lora-rank", type=int, default=16, help="LoRA rank (default 16).")
    parser.add_argument("--lora-alpha", type=int, default=None, help="LoRA alpha (default: twice the rank).")
    parser.add_argument("--beta", type=float, default=0.1, help="DPO's beta (default 0.1).")
    parser.add_argument("--seed", type=int, default=0)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    try:
        from aidsafe.train.training import TrainError, TrainSettings, train
    except ImportError as exc:
        print(f"aidsafe train needs the 'train' extra: pip install 'aidsafe[train]' ({exc})", file=sys.stderr)
        return 2
    settings = TrainSettings(
        data=args.data,
        output=args.output,
        format=args.format,
        base_model=args.base_model,
        full=args.full,
        merge=args.merge,
        max_steps=args.max_steps,
        epochs=args.epochs,
        learning_rate=args.learning_rate,
        batch_size=args.batch_size,
        max_length=args.max_length,
        lora_rank=args.lora_rank,
        lora_alpha=args.lora_alpha,
        beta=args.beta,
        seed=args.seed,
    )
    try:
        result = train(settings)
    except (TrainError, ModelFolderError) as exc:
        print(f"aidsafe train: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\ninterrupted: no model folder was written", file=sys.stderr)
        return 130
    print(
        f"trained {result.steps} steps on {result.rows} rows in {result.seconds:.1f} s "
        f"({result.seconds_per_step:.1f} s per step, final loss {result.final_loss})\nmodel: {result.output}"
    )
    return 0

"""Plays `vllm run-batch -i requests.jsonl -o results.jsonl --model NAME`: reads a Batch API request
file and writes one result line per request, each a random schema-valid answer (`tests/fakes.py`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from tests.fakes import RandomSchemaAnswers, play_vllm_run_batch

if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="vllm run-batch")
    parser.add_argument("-i", "--input-file", required=True)
    parser.add_argument("-o", "--output-file", required=True)
    parser.add_argument("--model", required=True)
    args = parser.parse_args()
    play_vllm_run_batch(Path(args.input_file), Path(args.output_file), RandomSchemaAnswers())

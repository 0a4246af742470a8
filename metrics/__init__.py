"""Evaluation of generated data: reading records, deterministic metrics, and judge grading."""

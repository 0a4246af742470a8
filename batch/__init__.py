"""Batch engine: read prompts, run one async function per sample with resume, write records."""

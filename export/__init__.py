"""Turn aidsafe records into training data: TRL-ready JSONL and a Hugging Face dataset (parquet)."""

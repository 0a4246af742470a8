"""`aidsafe train`: fine-tune a causal LM on aidsafe exports with TRL (the `[train]` extra)."""

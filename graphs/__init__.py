"""Graph wiring only: the agents live in `nodes/`, the schemas in `state/`."""

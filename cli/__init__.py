"""The `aidsafe` command line."""

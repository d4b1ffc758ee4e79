"""The `cortex` command: serve, status, models, load/unload, and `up` (the embedded default)."""

"""The light part both daemons share: wire shapes and errors, config-file loading and
validation, SSE framing and systemd notification. The neuron imports this package and
nothing else of `cortex` (tests/test_repository.py checks it)."""

"""Reproducible benchmarks that print figures (`python -m bench`, `bench/gpu_check.sh`)."""

"""neuron.toml: the daemon's settings, typed, with NEURON_<KEY> environment overrides.

Parsing, overrides and error messages come from the shared loader
(cortex.common.configfile), so a bad neuron.toml reads exactly like a bad cortex.toml:
one line naming the file, the key and what was expected.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from cortex.common.configfile import ConfigError, load_config
from cortex.common.limits import server_limits_problem

__all__ = ["ConfigError", "DefaultModel", "NeuronConfig", "load"]

Dtype = Literal["auto", "float32", "bfloat16", "float16"]


@dataclass
class DefaultModel:
    """A model loaded at start, one after another, once the port is bound."""

    model_id: str
    devices: list[str] | None = None
    dtype: Dtype = "auto"
    max_context: int | None = None
    prefix_cache: bool | None = None  # None: the daemon's `prefix_cache`
    pooling: Literal["last", "mean", "cls"] | None = None  # None: what the model's files say


@dataclass
class NeuronConfig:
    port: int = 13131
    listen: str = "0.0.0.0"
    models_dir: Path = Path("models")
    hf_cache: Path | None = None
    # Model ids resolve only inside models_dir, the HF cache and these folders.
    allowed_model_roots: list[Path] = field(default_factory=list)
    allow_download: bool = False
    kv_cache_memory_fraction: float = 0.9  # of the GPU memory free once the weights are in
    cpu_kv_cache_mb: int = 512
    max_batch_size: int = 32
    max_waiting: int = 256  # per model, beyond the running batch; more → 503
    max_prefill_tokens: int = 2048
    block_size: int = 16
    prefix_cache: bool = True  # keep and share full KV blocks of prompts (per model: load request)
    max_body_bytes: int = 8 * 1024 * 1024
    header_read_timeout_seconds: float = 60.0  # to each request head, idle keep-alive included
    body_read_timeout_seconds: float = 60.0
    max_connections: int = 1024
    drain_timeout_seconds: float = 300.0
    cpu_dtype: Dtype = "float32"
    cuda_dtype: Dtype = "bfloat16"
    # How CPU models hold their matmul weights (neuron/models/weight_format.py): "auto"
    # keeps a GGUF's quantisation packed (4-bit as int4, 8-bit as int8), "int4"/"int8"
    # pack every layer, "none" keeps cpu_dtype throughout.
    cpu_quantization: Literal["auto", "int4", "int8", "fp16", "none"] = "auto"
    # How CUDA models hold quantised weights: "auto" keeps what the file holds packed
    # (GGUF 4-bit, AWQ, GPTQ as int4; GGUF 5/6/8-bit as int8), "none" dequantises to
    # cuda_dtype. A load request's `gpu_quantization` overrides it per model.
    gpu_quantization: Literal["auto", "none"] = "auto"
    # Compile the CPU decode step in the background (neuron/engine/cpu_compile.py);
    # eager until it is ready, and for good where no C++ compiler is present.
    cpu_compile: bool = True
    # Where the neuron keeps what it builds and may rebuild (the compiled CPU decode step,
    # under inductor/); unset: $XDG_CACHE_HOME/neuron, else ~/.cache/neuron.
    cache_dir: Path | None = None
    token: str | None = None
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    default_models: list[DefaultModel] = field(default_factory=list)

    def validate(self) -> tuple[str, str, str] | None:
        """Ranges types cannot express, as (key, expected, got)."""
        checks = [
            ("port", 1 <= self.port <= 65535, "a port in 1..65535", self.port),
            (
                "kv_cache_memory_fraction",
                0.0 < self.kv_cache_memory_fraction <= 1.0,
                "a fraction in (0, 1]",
                self.kv_cache_memory_fraction,
            ),
            ("cpu_kv_cache_mb", self.cpu_kv_cache_mb >= 1, "at least 1", self.cpu_kv_cache_mb),
            ("max_batch_size", self.max_batch_size >= 1, "at least 1", self.max_batch_size),
            ("max_waiting", self.max_waiting >= 0, "0 or more", self.max_waiting),
            (
                "max_prefill_tokens",
                self.max_prefill_tokens >= 16,
                "at least 16",
                self.max_prefill_tokens,
            ),
            (
                "block_size",
                self.block_size in (8, 16, 32, 64, 128),
                "one of 8, 16, 32, 64, 128",
                self.block_size,
            ),
            ("max_body_bytes", self.max_body_bytes >= 1024, "at least 1024", self.max_body_bytes),
            ("token", self.token is None or self.token != "", "a non-empty string", '""'),
        ]
        for key, ok, expected, got in checks:
            if not ok:
                return key, expected, str(got)
        return server_limits_problem(self)

    def dtype_for(self, kind: str, requested: str = "auto") -> str:
        if requested != "auto":
            return requested
        return self.cuda_dtype if kind == "cuda" else self.cpu_dtype


def _default_cache_dir() -> Path:
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "neuron"


def load(path: str | Path) -> NeuronConfig:
    """Read neuron.toml (or .yaml); raises ConfigError naming file, key and expectation."""
    config = load_config(NeuronConfig, path, env_prefix="NEURON_", env_separator=None)
    base = Path(path).resolve().parent
    if not config.models_dir.is_absolute():
        config.models_dir = base / config.models_dir
    if config.hf_cache is not None and not config.hf_cache.is_absolute():
        config.hf_cache = base / config.hf_cache
    config.allowed_model_roots = [base / root for root in config.allowed_model_roots]
    config.cache_dir = base / (config.cache_dir or _default_cache_dir())
    return config

"""Read a Hugging Face folder's safetensors, single-file or sharded, one tensor at a time.

Tensors are yielded lazily (memory-mapped) so that loading never holds two
copies of a model: each one is copied into the decoder's slot and dropped.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open

from neuron.models.errors import ModelLoadError

INDEX_FILE = "model.safetensors.index.json"


def safetensors_files(folder: Path) -> list[Path]:
    """The files holding the weights: those named by the shard index, else *.safetensors."""
    index = folder / INDEX_FILE
    if index.exists():
        try:
            weight_map = json.loads(index.read_text())["weight_map"]
        except (ValueError, KeyError) as exc:
            raise ModelLoadError("invalid", f"{index} is not a valid shard index: {exc}") from exc
        files = [folder / name for name in sorted(set(weight_map.values()))]
        for file in files:
            if not file.exists():
                raise ModelLoadError(
                    "invalid", f"shard {file.name} named by {INDEX_FILE} is missing"
                )
        return files
    files = sorted(folder.glob("*.safetensors"))
    if not files:
        raise ModelLoadError("invalid", f"no *.safetensors weights in {folder}")
    return files


def iter_safetensors(folder: Path) -> Iterator[tuple[str, torch.Tensor]]:
    """Yield (name, tensor) for every tensor of the folder's weight files."""
    for file in safetensors_files(folder):
        try:
            with safe_open(str(file), framework="pt") as handle:
                for name in handle.keys():  # noqa: SIM118 (safe_open has no __iter__)
                    yield name, handle.get_tensor(name)
        except (SafetensorError, OSError, RuntimeError) as exc:
            raise ModelLoadError("invalid", f"{file.name} is truncated or corrupt: {exc}") from exc

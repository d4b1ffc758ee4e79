"""The test models of the packed GPU form, and how to load each beside its dense twin.

GGUF: tiny llama and qwen3 with Q4_0, Q4_K, Q6_K and Q8_0 tensors (the dense twin is
the same file dequantised by gguf). AWQ / GPTQ: tiny Hugging Face folders quantised
the way AutoAWQ / AutoGPTQ pack them (the dense twin holds the dequantised weights).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch

from neuron.models import gguf_io
from neuron.models.llama import LlamaForCausalLM
from neuron.models.loader import gguf_model, load_model
from tests.models.quant_gguf import write_quant_gguf
from tests.models.quant_hf import quantised_folders

# name: (architecture, format, GPTQ symmetric)
PACKED_MODELS = {
    "llama-gguf": ("llama", "gguf", False),
    "qwen3-gguf": ("qwen3", "gguf", False),
    "llama-awq": ("llama", "awq", False),
    "qwen3-awq": ("qwen3", "awq", False),
    "llama-gptq-sym": ("llama", "gptq", True),
    "qwen3-gptq-zeros": ("qwen3", "gptq", False),
}


def write_packed_model(name: str, root: Path, tiny: Callable[[str], Path]) -> tuple[Path, Path]:
    """(the quantised file or folder, its dense twin) for PACKED_MODELS[name]."""
    arch, kind, sym = PACKED_MODELS[name]
    if kind == "gguf":
        path = write_quant_gguf(root / f"{name}.gguf", arch)
        return path, path
    return quantised_folders(tiny(arch), root, kind, sym=sym)


def load_pair(
    packed: Path, dense: Path, device: str, dtype: torch.dtype = torch.float32
) -> tuple[LlamaForCausalLM, LlamaForCausalLM, str]:
    """(the packed model, the dense one, the packed one's weight format) on `device`."""
    if packed.suffix == ".gguf":
        reader = gguf_io.open_gguf(packed)
        _, quant, weight_format = gguf_model(reader, torch.device(device), dtype, gpu_form=True)
        _, plain, _ = gguf_model(reader, torch.device(device), dtype)
        return quant, plain, weight_format
    loaded = load_model(str(packed), device, dtype, pack_as="cuda")
    return loaded.model, load_model(str(dense), device, dtype).model, loaded.weight_format

"""AWQ- and GPTQ-shaped copies of a tiny Hugging Face folder, written the way AutoAWQ
and AutoGPTQ pack their tensors, beside a dense folder holding the same (dequantised)
weights: the packed model must compute what the dense one does."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

LINEARS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
_AWQ_PACK_ORDER = [0, 2, 4, 6, 1, 3, 5, 7]  # AutoAWQ: nibble i holds column order[i]


def _quantise(w: torch.Tensor, group: int, sym: bool) -> tuple[torch.Tensor, ...]:
    """w [in, out] → codes [in, out], zeros and fp16 scales [in / group, out]."""
    rows, cols = w.shape
    grouped = w.reshape(rows // group, group, cols)
    if sym:
        scale = (grouped.abs().amax(dim=1) / 7).clamp(min=1e-6).half()
        zero = torch.full_like(scale, 8, dtype=torch.int32)
    else:
        low, high = grouped.amin(dim=1), grouped.amax(dim=1)
        scale = ((high - low) / 15).clamp(min=1e-6).half()
        # GPTQ v1 stores zero - 1 in four bits: keep zero >= 1 so that it survives.
        zero = torch.round(-low / scale.float()).clamp(1, 15).int()
    step = scale.float().repeat_interleave(group, 0)
    codes = (torch.round(w / step) + zero.repeat_interleave(group, 0)).clamp(0, 15).int()
    return codes, zero, scale


def _pack_columns(values: torch.Tensor, order: list[int]) -> torch.Tensor:
    """[rows, cols] 4-bit values → int32 [rows, cols / 8], nibble i = column order[i]."""
    words = torch.zeros(values.shape[0], values.shape[1] // 8, dtype=torch.int32)
    for i, column in enumerate(order):
        words |= values[:, column::8] << (4 * i)
    return words


def _pack_rows(values: torch.Tensor) -> torch.Tensor:
    """[rows, cols] 4-bit values → int32 [rows / 8, cols], nibble i = row 8r + i."""
    words = torch.zeros(values.shape[0] // 8, values.shape[1], dtype=torch.int32)
    for i in range(8):
        words |= values[i::8] << (4 * i)
    return words


def quantised_folders(
    dense: Path, root: Path, method: str, group: int = 32, sym: bool = False
) -> tuple[Path, Path]:
    """(the `method` checkpoint, a dense folder with its dequantised weights)."""
    quant, reference = root / f"{dense.name}-{method}", root / f"{dense.name}-{method}-ref"
    for folder in (quant, reference):
        shutil.copytree(dense, folder, dirs_exist_ok=True)
    tensors = load_file(str(dense / "model.safetensors"))
    packed, plain = {}, {}
    for name, tensor in tensors.items():
        layer = name.removesuffix(".weight")
        if not (name.endswith(".weight") and layer.rsplit(".", 1)[-1] in LINEARS):
            packed[name] = plain[name] = tensor
            continue
        codes, zero, scale = _quantise(tensor.t().float(), group, sym)
        steps = (codes - zero.repeat_interleave(group, 0)).float()
        plain[name] = (steps * scale.float().repeat_interleave(group, 0)).t().contiguous()
        packed[f"{layer}.scales"] = scale
        if method == "awq":
            packed[f"{layer}.qweight"] = _pack_columns(codes, _AWQ_PACK_ORDER)
            packed[f"{layer}.qzeros"] = _pack_columns(zero, _AWQ_PACK_ORDER)
        else:
            packed[f"{layer}.qweight"] = _pack_rows(codes)
            packed[f"{layer}.qzeros"] = _pack_columns(zero - 1, list(range(8)))
            packed[f"{layer}.g_idx"] = torch.arange(codes.shape[0], dtype=torch.int32) // group
    save_file(packed, str(quant / "model.safetensors"))
    save_file(plain, str(reference / "model.safetensors"))
    config = json.loads((dense / "config.json").read_text())
    config["quantization_config"] = (
        {"quant_method": "awq", "bits": 4, "group_size": group, "zero_point": True,
         "version": "gemm"}
        if method == "awq"
        else {"quant_method": "gptq", "bits": 4, "group_size": group, "desc_act": False,
              "sym": sym}
    )  # fmt: skip
    (quant / "config.json").write_text(json.dumps(config))
    return quant, reference

"""Packed (GPU-form) models: through the Triton kernels under the interpreter (or on a
GPU) they compute what their dense twins do; resident sizes against the files'."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors import safe_open

from neuron.models import gguf_io
from neuron.models.loader import gguf_gpu_bytes, load_model, memory_estimate_bytes
from neuron.models.quant_linear import GroupQuantLinear
from neuron.models.resolve import AvailableModel
from tests.kernels.runners import InterpreterWorker, needs_cuda, run_on_gpu
from tests.models.packed_models import PACKED_MODELS, load_pair, write_packed_model
from tests.models.quant_gguf import Q, write_quant_gguf

# Resident bytes (bf16 model) over the file's tensor bytes, measured. GGUF: the whole
# model (Q6_K tensors widen to int8, x1.31; float tensors at bf16). AWQ / GPTQ: the
# quantised layers (an fp32 offset per group of 32 where the file has a 4-bit zero
# point, x1.19; at the usual group of 128 it would be x1.05).
RESIDENT_OVER_FILE = {
    "llama-gguf": 1.07, "qwen3-gguf": 1.07, "llama-awq": 1.19, "qwen3-awq": 1.19,
    "llama-gptq-sym": 1.19, "qwen3-gptq-zeros": 1.19,
}  # fmt: skip
FOUR_BIT = {"attn_q": Q.Q4_K, "attn_k": Q.Q4_K, "attn_v": Q.Q4_K, "attn_output": Q.Q4_0,
            "ffn_gate": Q.Q4_K, "ffn_up": Q.Q4_K, "ffn_down": Q.Q4_K,
            "token_embd": Q.Q4_0, "output": Q.Q4_K}  # fmt: skip


@pytest.fixture(scope="module")
def packed_paths(tmp_path_factory, tiny_model_factory) -> dict[str, tuple[Path, Path]]:
    root = tmp_path_factory.mktemp("packed-models")
    return {name: write_packed_model(name, root, tiny_model_factory) for name in PACKED_MODELS}


@pytest.fixture(
    scope="module",
    params=["interpreter", pytest.param("cuda", marks=[pytest.mark.cuda, needs_cuda])],
)
def run_check(request):
    if request.param == "cuda":
        yield run_on_gpu
        return
    pytest.importorskip("triton")
    worker = InterpreterWorker()
    yield worker.run
    worker.close()


@pytest.mark.parametrize("name", list(PACKED_MODELS))
def test_packed_model_matches_its_dense_twin(run_check, packed_paths, name) -> None:
    packed, dense = packed_paths[name]
    run_check("packed_model", packed=str(packed), dense=str(dense), steps=32)


def _file_tensor_bytes(path: Path, suffixes: tuple[str, ...] = ("",)) -> int:
    if path.suffix == ".gguf":
        return sum(int(t.n_bytes) for t in gguf_io.open_gguf(path).tensors)
    total = 0
    with safe_open(str(path / "model.safetensors"), framework="pt") as handle:
        for name in handle.keys():  # noqa: SIM118
            if name.endswith(suffixes):
                tensor = handle.get_tensor(name)
                total += tensor.numel() * tensor.element_size()
    return total


def _packed_layer_bytes(model) -> int:
    return sum(
        b.numel() * b.element_size()
        for m in model.modules()
        if isinstance(m, GroupQuantLinear)
        for b in m.buffers()
    )


@pytest.mark.parametrize("name", list(PACKED_MODELS))
def test_resident_size_against_the_file(packed_paths, name) -> None:
    packed, dense = packed_paths[name]
    quant, _plain, _ = load_pair(packed, dense, "cpu", torch.bfloat16)
    if packed.suffix == ".gguf":
        ratio = quant.nbytes / _file_tensor_bytes(packed)
    else:
        layers = _file_tensor_bytes(packed, (".qweight", ".qzeros", ".scales"))
        ratio = _packed_layer_bytes(quant) / layers
    print(f"{name}: resident / file {ratio:.3f}")
    assert ratio == pytest.approx(RESIDENT_OVER_FILE[name], abs=0.02)
    if packed.suffix == ".gguf":  # the estimate placement plans with is what is held
        assert gguf_gpu_bytes(packed) == quant.nbytes


def test_four_bit_gguf_estimate_is_the_files_size(tmp_path) -> None:
    """What placement plans with for a 4-bit GGUF: within 10% of its tensor bytes."""
    path = write_quant_gguf(tmp_path / "q4.gguf", "llama", FOUR_BIT)
    estimate, file_bytes = gguf_gpu_bytes(path), _file_tensor_bytes(path)
    assert abs(estimate / file_bytes - 1) <= 0.10, (estimate, file_bytes)
    print(f"4-bit GGUF: estimate / file {estimate / file_bytes:.3f}")
    bf16 = sum(int(t.n_elements) * 2 for t in gguf_io.open_gguf(path).tensors)
    assert bf16 > 3 * file_bytes  # what dequantising to bf16 would have planned
    # The neuron's /models lists it with that estimate; a file it cannot read, with its size.
    listed = AvailableModel("q4", "gguf", path, path.stat().st_size)
    assert memory_estimate_bytes(listed) == estimate
    broken = tmp_path / "broken.gguf"
    broken.write_bytes(path.read_bytes()[:4096])
    assert memory_estimate_bytes(AvailableModel("b", "gguf", broken, 4096)) == 4096


def test_quantised_checkpoints_elsewhere_are_dense(packed_paths) -> None:
    """Off the GPU form (a CPU device, or gpu_quantization "none"), AWQ is dequantised."""
    packed, _ = packed_paths["llama-awq"]
    assert load_model(str(packed), "cpu", "float32").weight_format == "float32"
    none = load_model(str(packed), "cpu", "float32", gpu_quantization="none", pack_as="cuda")
    assert none.weight_format == "float32"

"""Every Triton kernel launch we ship, at the shapes our models use: one table for the
ahead-of-time compile test (``test_triton_compile``) and ``bench/gpu_resources.py``.

Each entry is a function decorated with ``@family`` that yields ``Variant`` records.
A variant holds the ``Launch`` its launcher builds (from meta tensors: shapes, dtypes
and strides without memory), so the compiled kernel has exactly the constexprs, warps
and stages that run. To add a kernel:

    @family
    def int4_matmul() -> Iterator[Variant]:
        for dtype, (n, k) in product(HALF, [(4096, 4096), (14336, 4096)]):
            x = meta((16, k), dtype)
            ...
            launch = int4_matmul_launch(x, packed, scales)  # the launcher's own planner
            yield Variant("int4_matmul", f"{n}x{k} {dtype}", launch)

Set ``zero_stack=True`` where the kernel must not spill (the test then asserts 0 stack
bytes), unless ``STACK_ALLOWED`` names the variant with a reason. ``everywhere`` marks
the variants also compiled for the cards beyond ``PRIMARY_ARCHS``: keep it to a few per
family, since every compile costs about a second of the suite's time on a cold cache."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from itertools import product

import torch

from neuron_kernels.attention_decode import decode_launches
from neuron_kernels.attention_prefill import prefill_launches
from neuron_kernels.sampling import SamplingBatch, SamplingRow
from neuron_kernels.sampling_triton import penalty_launch, sample_launch
from neuron_kernels.triton_util import Launch

META = torch.device("meta")
# The head sizes of the models we serve, per dtype: bf16 (what GPU serving runs) at every
# one and every group; fp16 compiles like bf16, so one size; fp32 where its settings
# change; both with GQA groups only (a group of 1 is a constant in the cubin: MHA).
HEAD_DIMS = {"bf16": (64, 80, 96, 128, 256), "fp16": (128,), "fp32": (64, 128, 256)}
GROUPS = tuple(range(1, 9))
DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}
PAGE = 16
# Every variant compiles for PRIMARY_ARCHS; the ones marked ``everywhere`` for all ARCHS.
PRIMARY_ARCHS = (90, 80)
ARCHS = (80, 86, 89, 90, 120)


@dataclass(frozen=True)
class Variant:
    """One launch to compile. ``tensor_cores``: whether its dots must (True) or must not
    (False) be tensor-core instructions; None where it has no dots."""

    kernel: str
    shape: str
    launch: Launch
    zero_stack: bool = False
    everywhere: bool = False
    tensor_cores: bool | None = None

    @property
    def name(self) -> str:
        return f"{self.kernel}[{self.shape}]"


FAMILIES: list[Callable[[], Iterator[Variant]]] = []

# Variants allowed to use stack although ``zero_stack`` asks for none: name -> why.
STACK_ALLOWED: dict[str, str] = {}


def family(fn: Callable[[], Iterator[Variant]]) -> Callable[[], Iterator[Variant]]:
    FAMILIES.append(fn)
    return fn


def variants() -> list[Variant]:
    return [v for fn in FAMILIES for v in fn()]


def meta(shape: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
    return torch.empty(shape, dtype=dtype, device=META)


def attention_shapes() -> Iterator[tuple[str, torch.dtype, int, int]]:
    """(dtype name, dtype, head_dim, GQA group) for every attention variant."""
    for name, dims in HEAD_DIMS.items():
        for head_dim, group in product(dims, GROUPS if name == "bf16" else GROUPS[1:]):
            yield name, DTYPES[name], head_dim, group


def attention(kernel: str, shape: str, launch: Launch, dtype: str, head_dim: int) -> Variant:
    """Half precision at head sizes up to 128 (nearly every served model) must not
    spill; the Llama 3 8B shape is also compiled for every card."""
    return Variant(
        kernel, shape, launch,
        zero_stack=dtype != "fp32" and head_dim <= 128,
        everywhere=shape == "d128 g4 bf16",
        tensor_cores=dtype != "fp32",
    )  # fmt: skip


@family
def decode() -> Iterator[Variant]:
    """Llama-shaped heads (8 kv heads), batch 4, 1k keys of room, 8 splits; at head_dim
    128 in bf16 also one split, as at large batch (the split count is then a constant
    in the cubin, and the merge's block of splits shrinks)."""
    batch, kv_heads, blocks = 4, 8, 64
    for name, dtype, head_dim, group in attention_shapes():
        q = meta((batch, kv_heads * group, head_dim), dtype)
        cache = meta((batch * blocks, PAGE, kv_heads, head_dim), dtype)
        tables = meta((batch, blocks), torch.int32)
        lens = meta((batch,), torch.int32)
        shape = f"d{head_dim} g{group} {name}"
        for splits in (8, 1) if (name, head_dim) == ("bf16", 128) else (8,):
            _, (split, merge) = decode_launches(q, cache, cache, tables, lens, 0.1, splits)
            label = shape if splits == 8 else f"{shape} 1 split"
            yield attention("decode_split", label, split, name, head_dim)
            if group == 2:  # the merge runs per query head: the group does not change it
                yield Variant("decode_merge", label, merge)


@family
def prefill() -> Iterator[Variant]:
    """Two sequences of a fused-QKV batch (q, k, v head-strided views, as the decoder
    gives them)."""
    tokens, kv_heads = 512, 8
    for name, dtype, head_dim, group in attention_shapes():
        heads = kv_heads * group
        qkv = meta((tokens, heads + 2 * kv_heads, head_dim), dtype)
        q, k, v = qkv[:, :heads], qkv[:, heads : heads + kv_heads], qkv[:, heads + kv_heads :]
        cu = meta((3,), torch.int32)
        _, (launch,) = prefill_launches(q, k, v, cu, cu, tokens, tokens, 0.1)
        yield attention("prefill", f"d{head_dim} g{group} {name}", launch, name, head_dim)


@family
def sampling() -> Iterator[Variant]:
    """Vocabularies of SmolLM2 (49k), Llama 3 (128k) and Qwen (152k); 8 rows with penalties."""
    rows = [SamplingRow(repetition_penalty=1.1, prompt_ids=list(range(300)))] * 8
    batch = SamplingBatch.from_rows(rows, META)
    for vocab in (49_152, 128_256, 151_936):
        x = meta((len(rows), vocab), torch.float32)
        out = meta((len(rows),), torch.int64)
        everywhere = vocab == 128_256
        launch = sample_launch(x, out, batch)
        yield Variant("sample", f"V{vocab}", launch, zero_stack=True, everywhere=everywhere)
        if everywhere:
            penalties = penalty_launch(x, batch)
            assert penalties is not None
            yield Variant("penalties", f"300 ids V{vocab}", penalties, True, True)

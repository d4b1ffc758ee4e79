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
from neuron_kernels.fused_moe_triton import fused_moe_config, grouped_matmul_launch
from neuron_kernels.quant_matmul_triton import quant_matmul_plan
from neuron_kernels.sampling import SamplingBatch, SamplingRow
from neuron_kernels.sampling_triton import penalty_launch, sample_launch
from neuron_kernels.triton_util import Launch
from tests.kernels.quant_cases import packed_weight

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


@family
def fused_moe() -> Iterator[Variant]:
    """Qwen3-30B-A3B's experts (128 of hidden 2048, intermediate 768, top-8) in bf16:
    both projections at a decode batch (8 pairs, short row blocks) and a prompt's
    (4096 pairs); the down projection weighted by the router and written in fp32."""
    experts, hidden, inter, top_k = 128, 2048, 768, 8
    for pairs in (8, 4096):
        tokens = pairs // top_k
        block_m = fused_moe_config(pairs, experts, 2 * inter, hidden)["BLOCK_M"]
        capacity = pairs + experts * block_m
        aligned = (
            meta((capacity,), torch.int32),
            meta((capacity // block_m,), torch.int32),
            meta((1,), torch.int32),
        )
        x = meta((tokens, hidden), torch.bfloat16)
        gate_up = meta((experts, 2 * inter, hidden), torch.bfloat16)
        hidden_out = meta((pairs, 2 * inter), torch.bfloat16)
        up = grouped_matmul_launch(x, gate_up, hidden_out, aligned, top_k)
        yield Variant("fused_moe_gate_up", f"{pairs} pairs bf16", up, tensor_cores=True)
        act = meta((pairs, inter), torch.bfloat16)
        down = meta((experts, hidden, inter), torch.bfloat16)
        out = meta((pairs, hidden), torch.float32)
        route = meta((pairs,), torch.float32)
        launch = grouped_matmul_launch(act, down, out, aligned, 1, route)
        yield Variant("fused_moe_down", f"{pairs} pairs bf16", launch, tensor_cores=True)


@family
def quant_matmul() -> Iterator[Variant]:
    """Llama 3 8B's gate/up matmul in each packed layout, bf16, at a decode batch of 1
    (split-K) and a 512-token prompt (tiles); its down matmul, fp16 and fp32 at one."""
    gate_up, down = (28_672, 4096), (4096, 14_336)
    layouts = ("q4_0", "q4_1", "q4_k", "q8_0", "q6_k", "q5_k", "awq128")
    cases = [(layout, "bf16", gate_up, rows) for layout in layouts for rows in (1, 512)]
    cases += [("q4_k", "bf16", down, 1), ("q4_k", "fp16", gate_up, 1), ("q4_k", "fp32", gate_up, 1)]
    for layout, name, (n, k), rows in cases:
        weight = packed_weight(layout, 1, k).map_rows(
            lambda t, n=n: torch.empty((n, *t.shape[1:]), dtype=t.dtype, device=META)
        )
        _, _, launch = quant_matmul_plan(meta((rows, k), DTYPES[name]), weight)
        everywhere = (layout, name, rows) == ("q4_k", "bf16", 1) and n == gate_up[0]
        yield Variant("quant_matmul", f"{layout} {n}x{k} m{rows} {name}", launch,
                      everywhere=everywhere, tensor_cores=name != "fp32")  # fmt: skip

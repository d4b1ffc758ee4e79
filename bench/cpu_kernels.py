"""Our CPU kernels (neuron_kernels/cpu) against torch's on the demo model's own weights.

SmolLM2-135M's 30 layers (the demo GGUF's Q4_1 codes; per layer the fused QKV, the
output, the fused gate/up and the down projection) at 1, 4, 16 and 512 rows: ours
(`neuron_cpu::int4_linear`; from 48 rows the weights widened by `int4_dequantize`, then
one dense matmul) against torch's `_weight_int4pack_mm_for_cpu` with bf16 activations;
where the CPU has AVX512-VNNI, also our AVX512 kernel against our AVX2 one at 2 to 16
rows; and the vocabulary's ranking (its int8 high part) at 1 to 4 rows: ours
(`int8_rows_linear`) against `_weight_int8pack_mm`. Each figure is the time of one
pass over all of them, the median of the runs; the two sides alternate run by run. The
relative error of each against the float64 product is printed beside.

    python -m bench.cpu_kernels [--runs 7]
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import torch

from bench.cli import runs_main
from bench.report import Figure
from neuron.demo import demo_gguf_path
from neuron.models.gguf_codes import GroupCodes
from neuron.models.lm_head import Int8Rows
from neuron.models.loader import load_model
from neuron.models.quant_linear import Int4Linear, Int4X86Linear
from neuron_kernels.cpu import cpu_kernels

THREADS = 2
LAYER_ROWS = (1, 4, 16, 512)
AVX512_ROWS = (2, 4, 8, 16)
HEAD_ROWS = (1, 2, 4)


def _timed(fn: Callable[[], object]) -> float:
    began = time.perf_counter()
    fn()
    return 1000 * (time.perf_counter() - began)


def _relative_error(got: torch.Tensor, exact: torch.Tensor) -> float:
    return ((got.double() - exact).abs().max() / exact.abs().max()).item()


def _on(instruction_set: str, fn: Callable[[], object]) -> Callable[[], object]:
    """fn with our int4 kernel for that instruction set."""

    def run() -> object:
        torch.ops.neuron_cpu.set_int4_instruction_set(instruction_set)
        return fn()

    return run


def _codes(layer: Int4X86Linear) -> GroupCodes:
    """The 4-bit weights back from our layout (exact: Q4_1's scales are fp16 in the file)."""
    n = layer.out_features
    nibbles = torch.stack((layer.codes & 15, layer.codes >> 4), dim=2)  # [N, K/32 * 16, 2]
    runs = nibbles.view(n, -1, 16, 2).transpose(2, 3).reshape(n, -1)
    return GroupCodes(runs, layer.scale.float(), layer.offset.float())


def run_cpu_kernels_bench(runs: int = 7) -> list[Figure]:
    """Prints a table, returns the figures (ours against torch's, per row count)."""
    if not cpu_kernels():
        raise SystemExit("our CPU kernels cannot run here (they need x86 with AVX2)")
    torch.set_num_threads(THREADS)
    loaded = load_model(str(demo_gguf_path()), "cpu", "float32", quantization="auto")
    ours = [getattr(m, attr) for m, attr, _ in loaded.model.packed_slots()]
    codes = [_codes(layer) for layer in ours]
    theirs = [Int4Linear(c) for c in codes]
    exact = [c.dequantize().double() for c in codes]
    head = loaded.model.lm_head
    assert isinstance(head, Int8Rows)
    high, scales = head.parts[: head.vocab], head.scales
    exact_head = high.double() * scales.double()[:, None]
    # name → (ours, the baseline, its name, our error, the baseline's error)
    cases: dict[str, tuple[Callable[[], object], Callable[[], object], str, float, float]] = {}
    gen = torch.Generator().manual_seed(0)
    best = torch.ops.neuron_cpu.int4_instruction_set()
    for rows in LAYER_ROWS:
        xs = [torch.randn(rows, layer.codes.shape[1] * 2, generator=gen) for layer in ours]
        bf16 = [x.bfloat16() for x in xs]
        errors = [
            (_relative_error(a(x), x.double() @ w.t()), _relative_error(b(y), x.double() @ w.t()))
            for a, b, x, y, w in zip(ours, theirs, xs, bf16, exact, strict=True)
        ]
        cases[f"30 layers, {rows} row(s)"] = (
            lambda xs=xs: [layer(x) for layer, x in zip(ours, xs, strict=True)],
            lambda bf16=bf16: [layer(y) for layer, y in zip(theirs, bf16, strict=True)],
            "torch's kernel",
            max(e[0] for e in errors),
            max(e[1] for e in errors),
        )
    for rows in AVX512_ROWS if best == "avx512_vnni" else ():
        xs = [torch.randn(rows, layer.codes.shape[1] * 2, generator=gen) for layer in ours]
        layers = lambda xs=xs: [layer(x) for layer, x in zip(ours, xs, strict=True)]  # noqa: E731
        error = {
            kernel: max(
                _relative_error(out, x.double() @ w.t())
                for out, x, w in zip(_on(kernel, layers)(), xs, exact, strict=True)
            )
            for kernel in ("avx512_vnni", "avx2")
        }
        cases[f"30 layers, {rows} row(s), AVX512-VNNI"] = (
            _on("avx512_vnni", layers),
            _on("avx2", layers),
            "our AVX2 kernel",
            error["avx512_vnni"],
            error["avx2"],
        )
    torch.ops.neuron_cpu.set_int4_instruction_set(best)
    for rows in HEAD_ROWS:
        x = torch.randn(rows, high.shape[1], generator=gen)
        exact_logits = x.double() @ exact_head.t()
        mine = lambda x=x: torch.ops.neuron_cpu.int8_rows_linear(x, high, scales)  # noqa: E731
        torch_s = lambda x=x: torch.ops.aten._weight_int8pack_mm(  # noqa: E731
            x.bfloat16(), high, head.scales_bf16
        )
        cases[f"vocabulary ranking, {rows} row(s)"] = (
            mine,
            torch_s,
            "torch's kernel",
            _relative_error(mine(), exact_logits),
            _relative_error(torch_s().float(), exact_logits),
        )
    figures = []
    print(f"{'figure':<40}{'ours ms':>10}{'base ms':>10}{'ratio':>7}  error ours / base  baseline")
    for name, (mine, base, base_name, mine_error, base_error) in cases.items():
        mine(), base()  # warm-up
        times: tuple[list[float], list[float]] = ([], [])
        for _ in range(runs):
            times[0].append(_timed(mine))
            times[1].append(_timed(base))
        figures.append(Figure("cpu kernels", name, "ms", times[0], base_name, times[1]))
        a, b = statistics.median(times[0]), statistics.median(times[1])
        print(
            f"{name:<40}{a:>10.2f}{b:>10.2f}{a / b:>7.2f}  {mine_error:.1e} / {base_error:.1e}"
            f"  {base_name}"
        )
    torch.ops.neuron_cpu.set_int4_instruction_set(best)
    return figures


def main() -> None:
    runs_main(__doc__, run_cpu_kernels_bench, 7)


if __name__ == "__main__":
    main()

"""Registers, stack and shared memory of every Triton kernel launch, per card, without a GPU.

Compiles the launches of `tests/kernels/variants.py` (the launchers' own settings) ahead
of time for each card and prints one Markdown table: per cell, registers per thread /
stack bytes per thread (spills) / shared memory per block in KiB. Launches that build
the same cubin on every card share a row (×N). Cards beyond sm_80/sm_90 get the
representative variants only.

    python -m bench.gpu_resources
"""

from __future__ import annotations

import argparse
import warnings

import triton

from tests.kernels import aot
from tests.kernels.compile_pool import compile_jobs
from tests.kernels.variants import ARCHS, PRIMARY_ARCHS, variants


def cell(result: aot.Resources | str | None) -> str:
    if result is None:
        return "–"
    if isinstance(result, str):
        return "fails: " + result.splitlines()[0][:60]
    return f"{result.registers} / {result.stack} / {result.shared / 1024:.0f}"


def table() -> str:
    registry = variants()
    archs = [a for a in ARCHS if aot.why_unsupported(a) is None]
    jobs = [
        (i, a) for i, v in enumerate(registry) for a in archs if v.everywhere or a in PRIMARY_ARCHS
    ]
    results = compile_jobs(jobs)
    rows: dict[tuple, list[int]] = {}
    for i, v in enumerate(registry):
        keys = tuple(aot.cache_key(v.launch, a) if (i, a) in results else None for a in archs)
        rows.setdefault((v.kernel, keys), []).append(i)
    lines = [
        "| kernel | shape | warps / stages | " + " | ".join(f"sm_{a}" for a in archs) + " |",
        "|---|---|---|" + "---|" * len(archs),
    ]
    for (kernel, _), members in rows.items():
        first = registry[members[0]]
        shape = first.shape + (f" ×{len(members)}" if len(members) > 1 else "")
        cells = " | ".join(cell(results.get((members[0], a))) for a in archs)
        launch = first.launch
        lines.append(f"| {kernel} | {shape} | {launch.num_warps} / {launch.num_stages} | {cells} |")
    skipped = [f"sm_{a}: {aot.why_unsupported(a)}" for a in ARCHS if a not in archs]
    return "\n".join(lines + [f"\nnot built: {s}" for s in skipped])


def main() -> None:
    argparse.ArgumentParser(description=__doc__.splitlines()[0]).parse_args()
    warnings.filterwarnings("ignore", message="TRITON_DEFAULT_FP_FUSION")
    print(f"registers / stack bytes / shared KiB per card (triton {triton.__version__}, "
          "compiled ahead of time)\n")  # fmt: skip
    print(table(), flush=True)


if __name__ == "__main__":
    main()

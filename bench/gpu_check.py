"""The measurements of bench/gpu_check.sh: (a) decode attention, (b) sampling, (c) end to end,
(d) prefill attention, (e) a mixture of experts against the dense model of its active
parameters, (f) packed int4 weights.

Prints each figure as it comes and writes everything to one JSON file.

    python -m bench.gpu_check [--dry-run] [--out results.json]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from bench import gpu_attention, gpu_e2e, gpu_prefill, gpu_quant, gpu_sampling, moe
from bench.gpu_common import copy_bandwidth, peak_bandwidth, setup
from bench.report import machine, versions


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dry-run", action="store_true", help="toy sizes on the CPU")
    parser.add_argument("--out", type=Path, help="where to write the JSON")
    parser.add_argument("--tests", default="not run", help="outcome of the CUDA-marked tests")
    args = parser.parse_args()
    s = setup(args.dry_run)
    began = time.monotonic()
    peak, source = peak_bandwidth(s)
    copy = copy_bandwidth(s)
    print(f"device {s.device} ({machine()['gpu']}): peak {peak / 1e9:.0f} GB/s ({source}), "
          f"copy {copy / 1e9:.0f} GB/s", flush=True)  # fmt: skip
    result = {
        "dry_run": args.dry_run,
        "machine": machine(),
        "versions": versions(),
        "dtype": str(s.dtype),
        "cuda": torch.version.cuda,
        "cuda_tests": args.tests,
        "peak_bandwidth_GBps": peak / 1e9,
        "peak_source": source,
        "copy_bandwidth_GBps": copy / 1e9,
        "attention": gpu_attention.run(s, peak),
        "sampling": gpu_sampling.run(s),
        "e2e": gpu_e2e.run(s, peak),
        "prefill": gpu_prefill.run(s),
        "int4": gpu_quant.run(s, peak),
    }
    if s.device.type == "cuda":
        torch.cuda.empty_cache()
    result["moe"] = moe.run_gpu(s)
    result["seconds"] = time.monotonic() - began
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

"""`make bench`: every CPU benchmark in one run, then the JSON and Markdown report.

The resources suite prints, without timing anything, the registers, stack and shared
memory of every Triton kernel compiled ahead of time for each GPU (bench/gpu_resources.py).

The engine and agent suites run in this process. The neuron HTTP and gateway suites are
their own scripts (each starts and stops its own processes); each is run
`--runs` times with one run apiece, and its printed table is parsed, so that
every figure here has all its runs and hence a spread. Sized to finish in under
15 minutes on a 2-core CPU.

    python -m bench [--runs 3] [--only engine agent neuron gateway resources]
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time

from bench.agent_turns import run_agent_bench
from bench.engine import run_engine_bench
from bench.report import Figure, write

SUITE_TIMEOUT_S = 900
NEURON_ROW = re.compile(r"^\s*(\d+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)(?:\s+[\d.]+){0,2}\s*$")
LLAMA_CPP_ROW = re.compile(r"^llama\.cpp, same GGUF, batch 1: ([\d.]+) tok/s, TTFT ([\d.]+) ms$")
GATEWAY_ROW = re.compile(
    r"^(\w+)\s+(\d+)\s+([\d.]+)/([\d.]+)\s+([\d.]+)/([\d.]+)\s+(-?[\d.]+)"
    r"\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s*$"
)
NGINX_ROW = re.compile(
    r"^nginx\s+(\w+)\s+(\d+)\s+([\d.]+)/([\d.]+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s*$"
)


def run_script(module: str, *args: str) -> str:
    """Run `python -m module args`, echo and return its output; a failure is an error."""
    cmd = [sys.executable, "-m", module, *args]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=SUITE_TIMEOUT_S)
    print(done.stdout, end="")
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {done.returncode}:\n{done.stderr[-2000:]}")
    return done.stdout


def parse_rows(text: str, pattern: re.Pattern[str], module: str) -> list[tuple[str, ...]]:
    rows = [m.groups() for m in map(pattern.match, text.splitlines()) if m]
    if not rows:
        raise RuntimeError(f"no result rows in the output of {module}:\n{text}")
    return rows


def neuron_figures(runs: int, tokens: int) -> list[Figure]:
    """Aggregate decode tokens/s and TTFT p50/p99 at 1/4/16 streams; 1 stream is the
    baseline for the others (how far concurrency multiplies throughput), and llama.cpp's
    batch 1, when it is installed, for every decode rate and the TTFT p50."""
    cells: dict[tuple[str, str], list[float]] = {}
    llama_cpp: dict[str, list[float]] = {}
    for _ in range(runs):
        out = run_script("bench.neuron_http", "--runs", "1", "--tokens", str(tokens))
        for rate, ttft in (m.groups() for m in map(LLAMA_CPP_ROW.match, out.splitlines()) if m):
            llama_cpp.setdefault("decode tok/s", []).append(float(rate))
            llama_cpp.setdefault("TTFT p50", []).append(float(ttft))
        for streams, rate, p50, p99 in parse_rows(out, NEURON_ROW, "bench.neuron_http"):
            for name, value in (("decode tok/s", rate), ("TTFT p50", p50), ("TTFT p99", p99)):
                cells.setdefault((streams, name), []).append(float(value))
    figures = []
    for (streams, name), values in cells.items():
        base = cells.get(("1", name)) if streams != "1" else None
        figures.append(
            Figure(
                "neuron",
                f"SmolLM2 over HTTP, {streams} concurrent stream(s): {name}",
                "tok/s" if name.startswith("decode") else "ms",
                values,
                "same, 1 stream" if base else None,
                base or [],
            )
        )
        if name in llama_cpp:
            figures.append(
                Figure(
                    "neuron",
                    f"SmolLM2 over HTTP, {streams} concurrent stream(s): {name} vs llama.cpp",
                    "tok/s" if name.startswith("decode") else "ms",
                    values,
                    "llama.cpp, same GGUF, batch 1",
                    llama_cpp[name],
                )
            )
    return figures


def gateway_figures(runs: int, seconds: int) -> list[Figure]:
    """Latency p50/p99 and requests/s through the gateway, beside calling the upstream
    directly, non-streaming and streaming, at concurrency 1 and 64."""
    cells: dict[tuple[str, str, str], dict[str, list[float]]] = {}
    nginx: dict[tuple[str, str], dict[str, list[float]]] = {}
    for _ in range(runs):
        out = run_script("bench.gateway", "--runs", "1", "--seconds", str(seconds))
        for mode, conc, _p50, _p99, nrps, grps, _ratio in (
            m.groups() for m in map(NGINX_ROW.match, out.splitlines()) if m
        ):
            cell = nginx.setdefault((mode, conc), {"ours": [], "nginx": []})
            cell["ours"].append(float(grps))
            cell["nginx"].append(float(nrps))
        for row in parse_rows(out, GATEWAY_ROW, "bench.gateway"):
            mode, conc, d50, d99, g50, g99, _added, drps, grps, _ratio = row
            for name, direct, through in (
                ("latency p50", d50, g50),
                ("latency p99", d99, g99),
                ("requests/s", drps, grps),
            ):
                cell = cells.setdefault((mode, conc, name), {"ours": [], "direct": []})
                cell["ours"].append(float(through))
                cell["direct"].append(float(direct))
    figures = [
        Figure(
            "gateway",
            f"{mode}, concurrency {conc}: {name}",
            "req/s" if name == "requests/s" else "ms",
            cell["ours"],
            "upstream directly",
            cell["direct"],
        )
        for (mode, conc, name), cell in cells.items()
    ]
    return figures + [
        Figure(
            "gateway",
            f"{mode}, concurrency {conc}: requests/s vs nginx",
            "req/s",
            cell["ours"],
            "nginx reverse proxy (1 worker)",
            cell["nginx"],
        )
        for (mode, conc), cell in nginx.items()
    ]


def resource_table() -> list[Figure]:
    """Printed, not measured: no figures (the compiles run in their own process)."""
    run_script("bench.gpu_resources")
    return []


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument(
        "--only", nargs="+", default=["engine", "agent", "neuron", "gateway", "resources"]
    )
    parser.add_argument("--decode-tokens", type=int, default=32)
    parser.add_argument("--stream-tokens", type=int, default=32)
    parser.add_argument("--gateway-seconds", type=int, default=3, help="per wrk run")
    args = parser.parse_args()
    suites = {
        "engine": lambda: run_engine_bench(args.runs, args.decode_tokens),
        "agent": lambda: run_agent_bench(args.runs),
        "neuron": lambda: neuron_figures(args.runs, args.stream_tokens),
        "gateway": lambda: gateway_figures(args.runs, args.gateway_seconds),
        "resources": resource_table,
    }
    figures: list[Figure] = []
    notes: list[str] = []
    for name in args.only:
        began, load = time.monotonic(), os.getloadavg()[0]
        figures += suites[name]()
        notes.append(
            f"{name} suite: {args.runs} runs in {time.monotonic() - began:.0f} s; 1-minute load "
            f"average {load:.1f} before it, {os.getloadavg()[0]:.1f} after (other work on "
            "the cores shows as spread)"
        )
    path = write(figures, notes)
    print(f"\nwrote {path} and {path.with_suffix('.md')}")
    print(path.with_suffix(".md").read_text())


if __name__ == "__main__":
    main()

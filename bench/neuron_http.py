"""Decode throughput and time to first token of a neuron over HTTP (SmolLM2 demo GGUF).

Starts `neuron serve` on loopback with the demo model, then for 1, 4 and 16
concurrent streams measures aggregate decode tokens/s and TTFT p50/p99, taking
the median of several runs. When `llama_cpp` (llama-cpp-python) is importable,
llama.cpp decoding the same GGUF at batch 1 with the same threads, in this process
while the neuron idles, is the baseline of every row: the aggregate rate over what
one llama.cpp stream gets, and the TTFT over llama.cpp's time to its first token.
Prints figures; asserts nothing.

    python -m bench.neuron_http [--tokens 64] [--runs 3] [--concurrency 1 4 16]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import aiohttp

from bench.engine import llama_cpp_generate
from neuron.demo import DEMO_MODEL_ID, demo_gguf_path, fetch_demo
from neuron.models.gguf_io import open_gguf
from neuron.text.chat_template import ChatTemplate
from neuron.text.tokenizer import Tokenizer
from tests.support.daemons import wait_ready
from tests.support.procs import Proc, free_port

PROMPT = "Write a short story about a lighthouse keeper who finds a message in a bottle."


async def _stream(
    session: aiohttp.ClientSession, url: str, tokens: int, i: int
) -> tuple[float, float, int]:
    """(ttft, end, completion tokens) of one streamed chat completion."""
    body = {
        "model": DEMO_MODEL_ID,
        "messages": [{"role": "user", "content": f"{PROMPT} ({i})"}],
        "max_tokens": tokens,
        "ignore_eos": True,
        "temperature": 0,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    start = time.perf_counter()
    ttft, used = None, 0
    async with session.post(url + "/v1/chat/completions", json=body) as resp:
        resp.raise_for_status()
        async for line in resp.content:
            if not line.startswith(b"data: {"):
                continue
            chunk = json.loads(line[6:])
            if ttft is None and any(c["delta"].get("content") for c in chunk["choices"]):
                ttft = time.perf_counter() - start
            if chunk.get("usage"):
                used = chunk["usage"]["completion_tokens"]
    return ttft or 0.0, time.perf_counter() - start, used


async def _run(url: str, concurrency: int, tokens: int) -> tuple[float, list[float]]:
    """Aggregate decode tokens/s (after each stream's first token) and every TTFT."""
    async with aiohttp.ClientSession() as session:
        began = time.perf_counter()
        results = await asyncio.gather(
            *(_stream(session, url, tokens, i) for i in range(concurrency))
        )
        wall = time.perf_counter() - began
    ttfts = [r[0] for r in results]
    decoded = sum(r[2] - 1 for r in results)
    return decoded / max(1e-9, wall - min(ttfts)), ttfts


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def llama_cpp_baseline(tokens: int, runs: int) -> tuple[float, float] | None:
    """llama.cpp's batch-1 (decode tokens/s, TTFT s) on the prompt, medians; None when
    it is not installed."""
    path = demo_gguf_path()
    generate = llama_cpp_generate(str(path))
    if generate is None:
        return None
    tokenizer = Tokenizer.from_gguf(open_gguf(path))  # the neuron's, for the same ids
    template = ChatTemplate(tokenizer.chat_template, tokenizer.bos_token, None)
    rates, ttfts = [], []
    for i in range(runs):
        messages = [{"role": "user", "content": f"{PROMPT} ({i})"}]  # what the neuron gets
        text = template.render(messages, add_generation_prompt=True)
        stamps = generate(tokenizer.encode(text, add_bos=False), tokens)
        rates.append((tokens - 1) / (stamps[-1] - stamps[1]))
        ttfts.append(stamps[1] - stamps[0])
    return statistics.median(rates), statistics.median(ttfts)


async def _bench(
    url: str, levels: list[int], tokens: int, runs: int, baseline: tuple[float, float] | None
) -> None:
    await _run(url, 1, 4)  # warm-up
    versus = f" {'÷ llama.cpp':>11} {'TTFT ÷':>7}" if baseline else ""
    print(f"{'streams':>7} {'decode tok/s':>13} {'TTFT p50 ms':>12} {'TTFT p99 ms':>12}{versus}")
    for level in levels:
        rates, p50s, p99s = [], [], []
        for _ in range(runs):
            rate, ttfts = await _run(url, level, tokens)
            rates.append(rate)
            p50s.append(_pct(ttfts, 0.5))
            p99s.append(_pct(ttfts, 0.99))
        rate, p50 = statistics.median(rates), statistics.median(p50s)
        ratios = f" {rate / baseline[0]:>11.2f} {p50 / baseline[1]:>7.2f}" if baseline else ""
        print(
            f"{level:>7} {rate:>13.1f} {1000 * p50:>12.1f} "
            f"{1000 * statistics.median(p99s):>12.1f}{ratios}"
        )
    if baseline:
        print(
            f"llama.cpp, same GGUF, batch 1: {baseline[0]:.1f} tok/s, "
            f"TTFT {1000 * baseline[1]:.1f} ms"
        )


def wait_for_compile(log: Path, timeout: float = 1800.0) -> str:
    """Block until the neuron's background compile of the decode steps has ended (see
    neuron/engine/cpu_compile.py), so that every row measures the default path."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = log.read_text(errors="replace")
        if "CPU decode step compiled for batches" in text:
            return "compiled"
        if "CPU decode stays eager" in text:
            return "eager (compiling failed)"
        time.sleep(1)
    return "eager (still compiling)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--kv-mb", type=int, default=512)
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # still stop the neuron
    with demo_neuron(args.kv_mb) as (proc, log):
        print(f"decode step: {wait_for_compile(log)}")
        print(
            f"neuron on {proc.url}, model {DEMO_MODEL_ID}, {args.tokens} tokens per stream, "
            f"median of {args.runs} runs"
        )
        baseline = llama_cpp_baseline(args.tokens, args.runs)
        asyncio.run(_bench(proc.url, args.concurrency, args.tokens, args.runs, baseline))


@contextlib.contextmanager
def demo_neuron(kv_mb: int, *settings: str) -> Iterator[tuple[Proc, Path]]:
    """`neuron serve` on loopback with the demo model loaded (`settings`: more
    neuron.toml lines); yields the process and its log, stops it on the way out."""
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        fetch_demo(work / "models")
        port = free_port()
        config = work / "neuron.toml"
        lines = [f"port = {port}", 'listen = "127.0.0.1"', 'models_dir = "models"',
                 f"cpu_kv_cache_mb = {kv_mb}", *settings,
                 "[[default_models]]", f"model_id = {json.dumps(DEMO_MODEL_ID)}"]  # fmt: skip
        config.write_text("\n".join(lines) + "\n")
        proc = Proc(
            ["neuron.cli", "serve", "-c", str(config)],
            work / "neuron.log",
            f"http://127.0.0.1:{port}",
        ).start()
        try:
            wait_ready(proc, timeout=300)
            yield proc, work / "neuron.log"
        finally:
            proc.stop()


if __name__ == "__main__":
    main()

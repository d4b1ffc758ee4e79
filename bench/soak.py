"""Soak: 32 concurrent streams through the gateway on the demo model, for a long time.

Starts a neuron (SmolLM2 demo GGUF) and a gateway on loopback, then keeps `--streams`
streamed chat completions in flight for `--seconds` (default 10 minutes). Counts
errors (a non-200, an error event, a stream without `[DONE]` or without all its
tokens) and hangs (a stream that takes longer than `--hang-seconds`), and reads the
resident memory of every process after the warm-up and at the end. Prints figures;
asserts nothing.

    python -m bench.soak [--seconds 600] [--streams 32] [--tokens 32] [--warmup 60]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

from neuron.demo import DEMO_MODEL_ID, fetch_demo
from tests.support.procs import Proc, free_port

PROMPT = "Tell me about the sea, the wind and the lighthouse on the rock."


@dataclass
class Tally:
    done: int = 0
    tokens: int = 0
    errors: list[str] = field(default_factory=list)
    hangs: int = 0


def rss_mb(pid: int) -> float:
    """Resident memory of one process, from /proc (Linux)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for {pid}")


async def one_stream(session: aiohttp.ClientSession, url: str, tokens: int, i: int) -> int:
    """Completion tokens of one streamed chat; raises on anything that is not a clean end."""
    body = {
        "model": DEMO_MODEL_ID,
        "messages": [{"role": "user", "content": f"{PROMPT} ({i})"}],
        "max_tokens": tokens,
        "ignore_eos": True,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    used, finished = 0, False
    async with session.post(url + "/v1/chat/completions", json=body) as resp:
        if resp.status != 200:
            raise RuntimeError(f"status {resp.status}: {(await resp.text())[:200]}")
        async for line in resp.content:
            if line == b"data: [DONE]\n":
                finished = True
            elif line.startswith(b"data: {"):
                chunk = json.loads(line[6:])
                if "error" in chunk:
                    raise RuntimeError(f"error event: {chunk['error']}")
                if chunk.get("usage"):
                    used = chunk["usage"]["completion_tokens"]
    if not finished or used != tokens:
        raise RuntimeError(f"stream ended early: [DONE]={finished}, {used}/{tokens} tokens")
    return used


async def worker(url: str, args: argparse.Namespace, stop_at: float, tally: Tally, k: int) -> None:
    timeout = aiohttp.ClientTimeout(total=args.hang_seconds)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        i = 0
        while time.monotonic() < stop_at:
            i += 1
            try:
                used = await one_stream(session, url, args.tokens, k * 1_000_000 + i)
                tally.tokens, tally.done = tally.tokens + used, tally.done + 1
            except asyncio.TimeoutError:
                tally.hangs += 1
            except (aiohttp.ClientError, RuntimeError, ValueError) as exc:
                tally.errors.append(f"{type(exc).__name__}: {exc}")


async def soak(url: str, procs: dict[str, Proc], args: argparse.Namespace) -> None:
    started = time.monotonic()
    stop_at = started + args.seconds
    tally = Tally()
    tasks = [asyncio.create_task(worker(url, args, stop_at, tally, k)) for k in range(args.streams)]
    await asyncio.sleep(min(args.warmup, args.seconds / 2))
    warm = {name: rss_mb(p.popen.pid) for name, p in procs.items()}
    warm_done, warm_at = tally.done, time.monotonic()
    pending = set(tasks)
    while pending:
        _, pending = await asyncio.wait(pending, timeout=30)
        print(
            f"  {time.monotonic() - started:6.0f} s: {tally.done} streams, "
            f"{len(tally.errors)} errors, {tally.hangs} hangs",
            flush=True,
        )
    end = {name: rss_mb(p.popen.pid) for name, p in procs.items()}
    ran = time.monotonic() - started
    rate = (tally.done - warm_done) / max(1e-9, time.monotonic() - warm_at)
    print(
        f"\nran {ran:.0f} s ({args.streams} concurrent streams of {args.tokens} tokens): "
        f"{tally.done} streams, {tally.tokens} tokens, {len(tally.errors)} errors, "
        f"{tally.hangs} hangs (> {args.hang_seconds:g} s), {rate:.2f} streams/s after warm-up"
    )
    for error in sorted(set(tally.errors))[:10]:
        print(f"  error: {error}")
    print(f"\n{'process':<10}{'RSS warm MB':>12}{'RSS end MB':>12}{'end/warm':>10}")
    for name in procs:
        print(f"{name:<10}{warm[name]:>12.1f}{end[name]:>12.1f}{end[name] / warm[name]:>10.3f}")


def start(work: Path, args: argparse.Namespace, procs: dict[str, Proc]) -> str:
    """Start the neuron and the gateway into `procs` (so a failure still stops them)."""
    fetch_demo(work / "models")
    neuron_port, port = free_port(), free_port()
    (work / "neuron.toml").write_text(
        f'port = {neuron_port}\nlisten = "127.0.0.1"\nmodels_dir = "models"\n'
        f"cpu_kv_cache_mb = {args.kv_mb}\nmax_batch_size = {args.streams}\n"
        f'cpu_quantization = "{args.quantization}"\n'
        f"[[default_models]]\nmodel_id = {json.dumps(DEMO_MODEL_ID)}\n"
    )
    (work / "cortex.toml").write_text(
        f'[gateway]\nlisten = "127.0.0.1:{port}"\nmetrics_listen = "127.0.0.1:{free_port()}"\n'
        f'[[neurons]]\nname = "soak"\nendpoint = "http://127.0.0.1:{neuron_port}"\n'
    )
    procs["neuron"] = neuron = Proc(
        ["neuron.cli", "serve", "-c", str(work / "neuron.toml")],
        work / "neuron.log",
        f"http://127.0.0.1:{neuron_port}",
    ).start()
    procs["gateway"] = gateway = Proc(
        ["cortex.cli.main", "serve", "-c", str(work / "cortex.toml"), "--log-level", "warning"],
        work / "cortex.log",
        f"http://127.0.0.1:{port}",
    ).start()
    neuron.wait_http("/health", timeout=300, ready='"status": "ready"')
    gateway.wait_http("/health", timeout=60, ready='"nodes_up": 1')
    return gateway.url


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=600)
    parser.add_argument("--streams", type=int, default=32)
    parser.add_argument("--tokens", type=int, default=32)
    parser.add_argument("--warmup", type=float, default=60)
    parser.add_argument("--hang-seconds", type=float, default=300)
    parser.add_argument("--kv-mb", type=int, default=512)
    parser.add_argument("--quantization", choices=["none", "int8"], default="none")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # still stop the daemons
    with tempfile.TemporaryDirectory() as tmp:
        procs: dict[str, Proc] = {}
        try:
            url = start(Path(tmp), args, procs)
            print(f"soak: gateway {url} → neuron {procs['neuron'].url}, model {DEMO_MODEL_ID}")
            asyncio.run(soak(url, procs, args))
        finally:
            for proc in reversed(list(procs.values())):
                proc.stop()


if __name__ == "__main__":
    main()

"""Gateway overhead against an upstream that answers instantly (tests/support/fake_neuron.py).

Starts the instant upstream and a `cortex serve` in front of it as separate processes,
then drives both directly and through the gateway from this process: non-streaming
and streaming (100 chunks), at concurrency 1 and 64. Each cell is the median of
`--runs` runs. Prints p50/p99 latency, the p50 the gateway adds, and requests/s.
Where `nginx` is installed, a bare nginx reverse proxy (one worker, keep-alive to the
upstream, no buffering) in front of the same upstream is a second baseline.

    python -m bench.gateway [--runs 3] [--requests 400]
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from tests.support.procs import free_port

MODEL = "bench-model"


@dataclass
class Result:
    p50_ms: float
    p99_ms: float
    rps: float


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def _drive(url: str, stream: bool, concurrency: int, total: int) -> Result:
    body = {
        "model": MODEL,
        "messages": [{"role": "user", "content": "hi"}],
        "max_tokens": 100 if stream else 16,
        "stream": stream,
    }
    latencies: list[float] = []
    remaining = total
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def worker() -> None:
            nonlocal remaining
            while remaining > 0:
                remaining -= 1
                started = time.perf_counter()
                async with session.post(url, json=body) as resp:
                    await resp.read()
                    assert resp.status == 200, resp.status
                latencies.append(time.perf_counter() - started)

        for _ in range(min(20, total)):  # warm connections on both hops
            async with session.post(url, json=body) as resp:
                await resp.read()
        began = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - began
    return Result(
        _percentile(latencies, 0.5) * 1e3,
        _percentile(latencies, 0.99) * 1e3,
        len(latencies) / elapsed,
    )


def _median(results: list[Result]) -> Result:
    return Result(
        *(statistics.median(getattr(r, f) for r in results) for f in ("p50_ms", "p99_ms", "rps"))
    )


def _wait(url: str, timeout: float = 30) -> None:
    """Until the gateway reports its one node up."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1) as resp:
                if b'"nodes_up": 1' in resp.read():
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise TimeoutError(url)


NGINX_CONF = """daemon off;
worker_processes 1;
pid {work}/nginx.pid;
error_log stderr warn;
events {{ worker_connections 1024; }}
http {{
  access_log off;
  client_body_temp_path {work}/body;
  proxy_temp_path {work}/proxy;
  upstream instant {{ server 127.0.0.1:{upstream}; keepalive 128; }}
  server {{
    listen 127.0.0.1:{port};
    location / {{
      proxy_pass http://instant;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_buffering off;
    }}
  }}
}}
"""


def _start_nginx(workdir: Path, upstream_url: str) -> tuple[subprocess.Popen, str] | None:
    """A bare nginx reverse proxy in front of the upstream, if nginx is installed."""
    binary = shutil.which("nginx") or (
        "/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None
    )
    if binary is None:
        return None
    port = free_port()
    conf = workdir / "nginx.conf"
    upstream_port = upstream_url.rsplit(":", 1)[1]
    conf.write_text(NGINX_CONF.format(work=workdir, upstream=upstream_port, port=port))
    proc = subprocess.Popen([binary, "-c", str(conf), "-p", str(workdir)])
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url + "/health", timeout=1).read()
            return proc, url
        except OSError:
            time.sleep(0.1)
    proc.terminate()
    return None


def _start(workdir: Path) -> tuple[list[subprocess.Popen], str, str]:
    up_port, gw_port = free_port(), free_port()
    config = workdir / "cortex.toml"
    (workdir / "models.toml").write_text(f'[[models]]\nid = "{MODEL}"\nvram_mb = 1\n')
    config.write_text(
        f'models_config = "models.toml"\n[gateway]\nlisten = "127.0.0.1:{gw_port}"\n'
        f'metrics_listen = "127.0.0.1:{free_port()}"\n[poller]\ninterval_seconds = 5\n'
        f'[[neurons]]\nname = "instant"\nendpoint = "http://127.0.0.1:{up_port}"\n'
    )
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "tests.support.fake_neuron", "--port", str(up_port)]
        ),
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "cortex.cli.main",
                "serve",
                "-c",
                str(config),
                "--log-level",
                "warning",
            ]
        ),
    ]
    direct, gateway = f"http://127.0.0.1:{up_port}", f"http://127.0.0.1:{gw_port}"
    _wait(gateway + "/health")
    return procs, direct, gateway


async def _bench(direct: str, gateway: str, nginx: str | None, runs: int, requests: int) -> None:
    path = "/v1/chat/completions"
    await _drive(gateway + path, False, 1, 5)  # cold-load the model on the upstream
    targets = {"direct": direct, "gateway": gateway, **({"nginx": nginx} if nginx else {})}
    rows, nginx_rows = [], []
    for stream in (False, True):
        for concurrency in (1, 64):
            total = requests if concurrency == 1 else requests * 4
            cells = {}
            for name, base in targets.items():
                cells[name] = _median(
                    [await _drive(base + path, stream, concurrency, total) for _ in range(runs)]
                )
            rows.append((stream, concurrency, cells["direct"], cells["gateway"]))
            if nginx:
                nginx_rows.append((stream, concurrency, cells["nginx"], cells["gateway"]))
    header = (
        f"{'mode':<10}{'conc':>5}  {'direct p50/p99 ms':>18}  {'gateway p50/p99 ms':>19}"
        f"  {'added p50 ms':>12}  {'direct rps':>10}  {'gateway rps':>11}  {'ratio':>6}"
    )
    print(header)
    print("-" * len(header))
    for stream, concurrency, d, g in rows:
        mode = "stream100" if stream else "whole"
        print(
            f"{mode:<10}{concurrency:>5}  {d.p50_ms:>8.2f}/{d.p99_ms:<9.2f}  "
            f"{g.p50_ms:>8.2f}/{g.p99_ms:<10.2f}  {g.p50_ms - d.p50_ms:>12.2f}  "
            f"{d.rps:>10.0f}  {g.rps:>11.0f}  {g.rps / d.rps:>6.2f}"
        )
    if nginx_rows:
        print("\nagainst a bare nginx reverse proxy (1 worker) in front of the same upstream:")
        print(
            f"{'':<6}{'mode':<10}{'conc':>5}  {'nginx p50/p99 ms':>17}  {'nginx rps':>9}"
            f"  {'gateway rps':>11}  {'ratio':>6}"
        )
        for stream, concurrency, n, g in nginx_rows:
            mode = "stream100" if stream else "whole"
            print(
                f"{'nginx':<6}{mode:<10}{concurrency:>5}  {n.p50_ms:>8.2f}/{n.p99_ms:<8.2f}"
                f"  {n.rps:>9.0f}  {g.rps:>11.0f}  {g.rps / n.rps:>6.2f}"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--requests", type=int, default=400, help="per run at concurrency 1")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="cortex-bench-") as tmp:
        procs, direct, gateway = _start(Path(tmp))
        nginx = _start_nginx(Path(tmp), direct)
        if nginx is not None:
            procs.append(nginx[0])
        try:
            url = nginx[1] if nginx else None
            asyncio.run(_bench(direct, gateway, url, args.runs, args.requests))
        finally:
            for proc in procs:
                proc.terminate()
                proc.wait(20)


if __name__ == "__main__":
    main()

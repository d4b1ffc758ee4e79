"""Gateway overhead against an upstream that answers instantly, beside a bare nginx.

One nginx process is the instant upstream: it speaks just enough of the neuron wire for
the gateway's poller (/health, /discovery, /models) and answers every chat completion
at once from memory, whole or as a stream of 100 chunks (the usage chunk and [DONE]
included). In front of it, in the same run: `cortex serve` and a second nginx (one
worker, keep-alive to the upstream, no buffering), the bare reverse proxy a gateway is
held against. wrk drives each of the three (upstream directly, nginx, gateway) at
concurrency 1 and 64, whole and streamed; each cell is the median of `--runs` runs of
`--seconds` each. Prints p50/p99 latency, the p50 each proxy adds over the upstream,
requests/s, and the gateway's ratios to nginx.

Needs the Debian packages `nginx` (or `nginx-light`) and `wrk`; it says so and exits
when either is missing.

    python -m bench.gateway [--runs 3] [--seconds 3]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from tests.support.procs import free_port

MODEL = "bench-model"
CHUNKS = 100  # a streamed answer's content chunks
PATH = "/v1/chat/completions"


@dataclass
class Result:
    p50_ms: float
    p99_ms: float
    rps: float
    cpu_us: float = 0.0  # the gateway's CPU time (user + system) per request, where measured


def _chunk(delta: dict, finish: str | None = None, usage: dict | None = None) -> str:
    choices = [] if usage else [{"index": 0, "delta": delta, "finish_reason": finish}]
    body = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 0}
    body.update(model=MODEL, choices=choices, **({"usage": usage} if usage else {}))
    return "data: " + json.dumps(body, separators=(",", ":")) + "\n\n"


def _answers() -> dict[str, str]:
    """What the instant upstream says, by location."""
    usage = {"prompt_tokens": 5, "completion_tokens": 16, "total_tokens": 21}
    device = {"id": "cpu-0", "kind": "cpu", "name": "instant", "utilization": 0.0}
    device |= {"memory_total_bytes": 64 << 30, "memory_free_bytes": 64 << 30}
    whole = {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 0,
        "model": MODEL,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "ok " * 16},
                "finish_reason": "length",
            }
        ],
        "usage": usage,
    }
    stream_usage = {"prompt_tokens": 5, "completion_tokens": CHUNKS, "total_tokens": CHUNKS + 5}
    stream = "".join(_chunk({"content": "ok "}) for _ in range(CHUNKS))
    stream += _chunk({}, "length") + _chunk({}, usage=stream_usage) + "data: [DONE]\n\n"
    loaded = {"id": MODEL, "devices": ["cpu-0"], "status": "ready", "memory_bytes": 0}
    loaded |= {"context_length": 2048, "running": 0, "waiting": 0, "last_used": None}
    return {
        "health": json.dumps({"status": "ready", "uptime_seconds": 1e6, "devices": [device]}),
        "discovery": json.dumps({"hostname": "instant", "os": "linux", "devices": [device]}),
        "models": json.dumps({"loaded": [loaded], "available": []}),
        "whole": json.dumps(whole),
        "stream": stream,
    }


NGINX_HEAD = """daemon off;
worker_processes 1;
pid {work}/{name}.pid;
error_log stderr warn;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  client_body_temp_path {work}/{name}-body;
  proxy_temp_path {work}/{name}-proxy;
  keepalive_requests 1000000;
"""

UPSTREAM_SERVER = """  # nginx reads no body before answering: a whole request is told by its length
  map $content_length $answer {{ {whole_length} whole; default stream; }}
  default_type application/json;
  server {{
    listen 127.0.0.1:{port};
    root {www};
    location = {path} {{ rewrite ^ /$answer last; }}
    location = /stream {{ default_type text/event-stream; error_page 405 =200 $uri; }}
    location / {{ error_page 405 =200 $uri; }}  # a POST gets the file as a GET would
  }}
}}
"""

PROXY_SERVER = """  upstream instant {{ server 127.0.0.1:{upstream}; keepalive 128; }}
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


def _binary(name: str, package: str) -> str:
    found = shutil.which(name) or next(
        (p for p in (f"/usr/sbin/{name}", f"/usr/bin/{name}") if Path(p).exists()), None
    )
    if found is None:
        sys.exit(f"bench.gateway needs `{name}`: apt-get install {package}")
    return found


def _start_nginx(binary: str, workdir: Path, name: str, config: str) -> subprocess.Popen:
    conf = workdir / f"{name}.conf"
    conf.write_text(config)
    return subprocess.Popen([binary, "-c", str(conf), "-p", str(workdir)])


def _wait(url: str, needle: bytes = b"", timeout: float = 30) -> None:
    """Until `url` answers (with `needle` in its body)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1) as resp:
                if needle in resp.read():
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise TimeoutError(url)


def _start(workdir: Path, procs: list[subprocess.Popen]) -> dict[str, str]:
    """The upstream, nginx and the gateway (added to `procs` as they start); their base
    URLs by name."""
    nginx = _binary("nginx", "nginx-light")
    up, proxy, gw = free_port(), free_port(), free_port()
    www = workdir / "www"
    www.mkdir()
    workdir.chmod(0o755)  # nginx's workers (user nobody, when started as root) read it
    for name, text in _answers().items():
        (www / name).write_text(text)
    whole_length = len(_request(False).encode())
    upstream_conf = NGINX_HEAD.format(work=workdir, name="upstream") + UPSTREAM_SERVER.format(
        port=up, path=PATH, whole_length=whole_length, www=www
    )
    proxy_conf = NGINX_HEAD.format(work=workdir, name="proxy") + PROXY_SERVER.format(
        upstream=up, port=proxy
    )
    config = workdir / "cortex.toml"
    (workdir / "models.toml").write_text(f'[[models]]\nid = "{MODEL}"\nvram_mb = 1\n')
    config.write_text(
        f'models_config = "models.toml"\n[gateway]\nlisten = "127.0.0.1:{gw}"\n'
        f'metrics_listen = "127.0.0.1:{free_port()}"\n[poller]\ninterval_seconds = 5\n'
        f'[[neurons]]\nname = "instant"\nendpoint = "http://127.0.0.1:{up}"\n'
    )
    procs.append(_start_nginx(nginx, workdir, "upstream", upstream_conf))
    procs.append(_start_nginx(nginx, workdir, "proxy", proxy_conf))
    serve = [sys.executable, "-m", "cortex.cli.main", "serve", "-c", str(config)]
    procs.append(subprocess.Popen([*serve, "--log-level", "warning"]))
    urls = {
        n: f"http://127.0.0.1:{p}" for n, p in (("direct", up), ("nginx", proxy), ("gateway", gw))
    }
    _wait(urls["direct"] + "/health")
    _wait(urls["nginx"] + "/health")
    _wait(urls["gateway"] + "/health", b'"nodes_up": 1')
    return urls


WRK_SCRIPT = """wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = {body}
"""

_LATENCY = re.compile(r"^\s+(50|99)(?:\.0+)?%\s+([\d.]+)(us|ms|s)\s*$", re.M)
_RPS = re.compile(r"^Requests/sec:\s+([\d.]+)", re.M)
_COUNT = re.compile(r"^\s+(\d+) requests in", re.M)
_NON_2XX = re.compile(r"Non-2xx or 3xx responses: (\d+)")
_UNIT_MS = {"us": 1e-3, "ms": 1.0, "s": 1e3}


def _request(stream: bool) -> str:
    """The client's body (a streamed one asks for usage, so no two have the same length)."""
    body = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}]}
    body |= {"max_tokens": CHUNKS if stream else 16, "stream": stream}
    if stream:
        body["stream_options"] = {"include_usage": True}
    return json.dumps(body)


def _script(workdir: Path, stream: bool) -> Path:
    path = workdir / f"wrk-{'stream' if stream else 'whole'}.lua"
    path.write_text(WRK_SCRIPT.format(body=json.dumps(_request(stream))))
    return path


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _wrk(
    wrk: str, url: str, script: Path, concurrency: int, seconds: int, pid: int | None = None
) -> Result:
    """One wrk run; with `pid`, that process's CPU time per request too."""
    cpu = _cpu_seconds(pid) if pid else 0.0
    done = subprocess.run(
        [wrk, "-t1", f"-c{concurrency}", f"-d{seconds}s", "--latency", "-s", str(script), url],
        capture_output=True,
        text=True,
        check=True,
    )
    out = done.stdout
    if _NON_2XX.search(out) or "Socket errors" in out:
        raise RuntimeError(f"wrk saw failed requests on {url}:\n{out}")
    latency = {q: float(v) * _UNIT_MS[unit] for q, v, unit in _LATENCY.findall(out)}
    cpu_us = (_cpu_seconds(pid) - cpu) * 1e6 / int(_COUNT.search(out).group(1)) if pid else 0.0
    return Result(latency["50"], latency["99"], float(_RPS.search(out).group(1)), cpu_us)


def _median(results: list[Result]) -> Result:
    return Result(
        *(
            statistics.median(getattr(r, f) for r in results)
            for f in ("p50_ms", "p99_ms", "rps", "cpu_us")
        )
    )


def _bench(urls: dict[str, str], gateway_pid: int, workdir: Path, runs: int, seconds: int) -> None:
    wrk = _binary("wrk", "wrk")
    cells: dict[tuple[bool, int], dict[str, Result]] = {}
    for stream in (False, True):
        script = _script(workdir, stream)
        for concurrency in (1, 64):
            for name in urls:  # a short warm-up: connections open on both hops
                _wrk(wrk, urls[name] + PATH, script, concurrency, 1)
            found: dict[str, list[Result]] = {name: [] for name in urls}
            for _ in range(runs):  # the three targets in turns, so drift hits each alike
                for name, base in urls.items():
                    pid = gateway_pid if name == "gateway" else None
                    found[name].append(_wrk(wrk, base + PATH, script, concurrency, seconds, pid))
            cells[(stream, concurrency)] = {n: _median(r) for n, r in found.items()}
    _print(cells)


def _print(cells: dict[tuple[bool, int], dict[str, Result]]) -> None:
    header = (
        f"{'mode':<10}{'conc':>5}  {'direct p50/p99 ms':>18}  {'gateway p50/p99 ms':>19}"
        f"  {'added p50 ms':>12}  {'direct rps':>10}  {'gateway rps':>11}  {'ratio':>6}"
    )
    print(header)
    print("-" * len(header))
    for (stream, concurrency), c in cells.items():
        d, g = c["direct"], c["gateway"]
        print(
            f"{'stream100' if stream else 'whole':<10}{concurrency:>5}  "
            f"{d.p50_ms:>8.3f}/{d.p99_ms:<9.3f}  {g.p50_ms:>8.3f}/{g.p99_ms:<10.3f}  "
            f"{g.p50_ms - d.p50_ms:>12.3f}  {d.rps:>10.0f}  {g.rps:>11.0f}  {g.rps / d.rps:>6.2f}"
        )
    print("\nagainst a bare nginx reverse proxy (1 worker) in front of the same upstream:")
    print(
        f"{'':<6}{'mode':<10}{'conc':>5}  {'nginx p50/p99 ms':>17}  {'nginx rps':>9}"
        f"  {'gateway rps':>11}  {'ratio':>6}"
    )
    for (stream, concurrency), c in cells.items():
        n, g = c["nginx"], c["gateway"]
        print(
            f"{'nginx':<6}{'stream100' if stream else 'whole':<10}{concurrency:>5}  "
            f"{n.p50_ms:>8.3f}/{n.p99_ms:<8.3f}  {n.rps:>9.0f}  {g.rps:>11.0f}  {g.rps / n.rps:>6.2f}"
        )
    print("\ntargets: added p50 at concurrency 1 <= 0.2 ms; requests/s at 64 >= 0.5x nginx")
    for stream in (False, True):
        one, many = cells[(stream, 1)], cells[(stream, 64)]
        added = one["gateway"].p50_ms - one["direct"].p50_ms
        nginx_added = one["nginx"].p50_ms - one["direct"].p50_ms
        ratio = many["gateway"].rps / many["nginx"].rps
        print(
            f"  {'stream100' if stream else 'whole':<10} added p50 {added:.3f} ms"
            f" (nginx {nginx_added:.3f} ms) {'met' if added <= 0.2 else 'NOT met'};"
            f"  req/s at 64 {ratio:.2f}x nginx {'met' if ratio >= 0.5 else 'NOT met'};"
            f"  gateway CPU/request {one['gateway'].cpu_us:.0f} us at 1,"
            f" {many['gateway'].cpu_us:.0f} us at 64"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=3, help="per wrk run")
    args = parser.parse_args()
    _binary("wrk", "wrk")
    with tempfile.TemporaryDirectory(prefix="cortex-bench-") as tmp:
        procs: list[subprocess.Popen] = []
        try:
            urls = _start(Path(tmp), procs)
            _bench(urls, procs[-1].pid, Path(tmp), args.runs, args.seconds)
        finally:
            for proc in procs:
                proc.terminate()
                proc.wait(20)


if __name__ == "__main__":
    main()

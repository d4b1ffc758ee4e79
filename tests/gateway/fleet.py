"""Real neurons and gateways on loopback for the gateway tests, and small HTTP helpers."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.support.procs import Proc, free_port

MB = 1024 * 1024


def http(
    method: str,
    url: str,
    body: Any = None,
    headers: dict[str, str] | None = None,
    timeout: float = 120,
) -> tuple[int, Any, dict[str, str]]:
    """(status, parsed JSON or text, headers) — error statuses are returned, not raised."""
    data = (
        None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
    )
    req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            status, raw, hdrs = resp.status, resp.read(), dict(resp.headers)
    except urllib.error.HTTPError as exc:
        status, raw, hdrs = exc.code, exc.read(), dict(exc.headers)
    try:
        return status, json.loads(raw), hdrs
    except ValueError:
        return status, raw.decode(errors="replace"), hdrs


def wait_until(predicate: Callable[[], Any], timeout: float = 60, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise TimeoutError(f"{what} not reached in {timeout}s")


def scrape(url: str) -> dict[str, float]:
    """Prometheus text → {'name{labels}': value} (labels as printed)."""
    with urllib.request.urlopen(url, timeout=10) as resp:
        text = resp.read().decode()
    samples = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.rpartition(" ")
            samples[key] = float(value)
    return samples


def metric_sum(samples: dict[str, float], name: str, **labels: str) -> float:
    """Sum of a metric's samples whose labels include all of `labels`."""
    total = 0.0
    for key, value in samples.items():
        base = key.split("{", 1)[0]
        if base == name and all(f'{k}="{v}"' in key for k, v in labels.items()):
            total += value
    return total


@dataclass
class Neuron:
    name: str
    proc: Proc
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def capacity_mb(self) -> float:
        _, health, _ = http("GET", self.url + "/health")
        return sum(d["memory_total_bytes"] for d in health["devices"] if d["kind"] == "cpu") / MB

    def loaded(self) -> dict[str, str]:
        _, models, _ = http("GET", self.url + "/models")
        return {m["id"]: m["status"] for m in models["loaded"]}

    def load_count(self) -> float:
        return metric_sum(scrape(self.url + "/metrics"), "neuron_model_load_duration_seconds_count")


def start_neuron(
    workdir: Path,
    name: str,
    models_dir: Path,
    port: int | None = None,
    env: dict[str, str] | None = None,
    **settings: Any,
) -> Neuron:
    """A `neuron serve` process; `settings` add neuron.toml keys, `env` its environment."""
    port = port or free_port()
    config = workdir / f"{name}.toml"
    extra = "".join(f"{k} = {toml_value(v)}\n" for k, v in settings.items())
    config.write_text(
        f'listen = "127.0.0.1"\nport = {port}\nmodels_dir = "{models_dir}"\n'
        "cpu_kv_cache_mb = 16\nmax_batch_size = 16\ndrain_timeout_seconds = 5\n" + extra
    )
    proc = Proc(
        ["neuron.cli", "serve", "-c", str(config)],
        workdir / f"{name}.log",
        f"http://127.0.0.1:{port}",
        env=env or {},
    )
    proc.start()
    try:
        proc.wait_http("/health", timeout=120, ready='"ready"')
    except BaseException:
        proc.stop()
        raise
    return Neuron(name, proc, port)


@dataclass
class Gateway:
    proc: Proc
    port: int
    metrics_port: int
    config: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.metrics_port}/metrics"

    def get(self, path: str, **kw) -> tuple[int, Any, dict[str, str]]:
        return http("GET", self.url + path, **kw)

    def post(self, path: str, body: Any, **kw) -> tuple[int, Any, dict[str, str]]:
        return http("POST", self.url + path, body, **kw)

    def fleet(self) -> dict[str, Any]:
        return self.get("/fleet")[1]

    def node(self, name: str) -> dict[str, Any]:
        return next(n for n in self.fleet()["nodes"] if n["name"] == name)

    def models_on(self, name: str) -> dict[str, str]:
        return {m["id"]: m["status"] for m in self.node(name)["models"]}

    def chat(self, model: str, max_tokens: int = 4, **extra) -> tuple[int, Any, dict[str, str]]:
        body = {
            "model": model,
            "messages": [{"role": "user", "content": "hi"}],
            "max_tokens": max_tokens,
            "temperature": 0,
            **extra,
        }
        return self.post("/v1/chat/completions", body)

    def metrics(self) -> dict[str, float]:
        return scrape(self.metrics_url)

    def stop(self) -> None:
        self.proc.stop()


def toml_value(value: Any) -> str:
    return json.dumps(value) if not isinstance(value, bool) else str(value).lower()


def start_gateway(
    workdir: Path,
    neurons: list[Neuron],
    models: list[dict[str, Any]],
    aliases: dict[str, str] | None = None,
    name: str = "cortex",
    env: dict[str, str] | None = None,
    **sections: dict[str, Any],
) -> Gateway:
    """A `cortex serve` process; `sections` add or override cortex.toml tables."""
    port, metrics_port = free_port(), free_port()
    tables: dict[str, dict[str, Any]] = {
        "gateway": {"listen": f"127.0.0.1:{port}", "metrics_listen": f"127.0.0.1:{metrics_port}"},
        "poller": {"interval_seconds": 0.5, "timeout_seconds": 2, "unhealthy_after": 2},
        "routing": {"max_wait_seconds": 120, "keepalive_seconds": 1},
    }
    for section, values in sections.items():
        tables.setdefault(section, {}).update(values)
    lines = [f'models_config = "{name}-models.toml"']
    for section, values in tables.items():
        lines.append(f"[{section}]")
        lines += [f"{k} = {toml_value(v)}" for k, v in values.items()]
    for neuron in neurons:
        lines += ["[[neurons]]", f'name = "{neuron.name}"', f'endpoint = "{neuron.url}"']
    config = workdir / f"{name}.toml"
    config.write_text("\n".join(lines) + "\n")
    model_lines = []
    for model in models:
        model_lines.append("[[models]]")
        model_lines += [f"{k} = {toml_value(v)}" for k, v in model.items()]
    model_lines.append("[aliases]")
    model_lines += [f"{json.dumps(k)} = {json.dumps(v)}" for k, v in (aliases or {}).items()]
    (workdir / f"{name}-models.toml").write_text("\n".join(model_lines) + "\n")
    proc = Proc(
        ["cortex.cli.main", "serve", "-c", str(config)],
        workdir / f"{name}.log",
        f"http://127.0.0.1:{port}",
        env=env or {},
    )
    proc.start()
    gateway = Gateway(proc, port, metrics_port, config)
    try:
        proc.wait_http("/health", timeout=60)
        wait_until(lambda: gateway.get("/health")[1]["nodes_up"] == len(neurons), 30, "nodes up")
    except BaseException:
        proc.stop()
        raise
    return gateway

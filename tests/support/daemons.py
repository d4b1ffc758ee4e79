"""Real neurons and gateways on loopback: the one place tests start them.

`start_neuron` writes a neuron.toml and waits until /health says "ready" (every default
model settled); `start_gateway` writes cortex.toml and its models file and waits until
every neuron is up (and, if asked, until the named models show as loaded).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.support.http import Reply, get_json, http, metric_sum, scrape, wait_until
from tests.support.procs import Proc, free_port

MB = 1024 * 1024


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    return json.dumps(str(value) if isinstance(value, Path) else value)


@dataclass
class Neuron(Proc):
    """A `neuron serve` process and the calls tests make to it."""

    name: str = "neuron"

    def get_json(self, path: str, token: str | None = None) -> Any:
        return get_json(self.url + path, token)

    def post(self, path: str, body: Any, **kw: Any) -> Reply:
        return http("POST", self.url + path, body, **kw)

    def model(self, model_id: str) -> dict[str, Any]:
        """The model's entry in GET /models."""
        return next(m for m in self.get_json("/models")["loaded"] if m["id"] == model_id)

    def loaded(self) -> dict[str, str]:
        return {m["id"]: m["status"] for m in self.get_json("/models")["loaded"]}

    def capacity_mb(self) -> float:
        devices = self.get_json("/health")["devices"]
        return sum(d["memory_total_bytes"] for d in devices if d["kind"] == "cpu") / MB

    def load_count(self) -> float:
        return metric_sum(scrape(self.url + "/metrics"), "neuron_model_load_duration_seconds_count")

    def activation_failures(self) -> dict[str, Any]:
        activation = self.get_json("/health")["activation"]
        return {m: a for m, a in activation.items() if a["status"] == "failed"}


def write_neuron_config(path: Path, settings: dict[str, Any], defaults: list[str]) -> Path:
    lines = [f"{key} = {_toml(value)}" for key, value in settings.items()]
    for model in defaults:
        lines += ["[[default_models]]", f"model_id = {_toml(model)}"]
    path.write_text("\n".join(lines) + "\n")
    return path


def start_neuron(
    workdir: Path,
    models_dir: Path,
    defaults: list[str] | tuple[str, ...] = (),
    *,
    name: str = "neuron",
    port: int | None = None,
    module: str = "neuron.cli",
    env: dict[str, str] | None = None,
    timeout: float = 180.0,
    **settings: Any,
) -> Neuron:
    """`python -m <module> serve` (the scripted-model module registers its architecture);
    `settings` add to or override neuron.toml."""
    port = port or free_port()
    workdir.mkdir(parents=True, exist_ok=True)
    base = {"port": port, "listen": "127.0.0.1", "models_dir": models_dir, "cpu_kv_cache_mb": 64}
    config = write_neuron_config(workdir / f"{name}.toml", {**base, **settings}, list(defaults))
    neuron = Neuron(
        [module, "serve", "-c", str(config)],
        log=workdir / f"{name}.log",
        url=f"http://127.0.0.1:{port}",
        env=env or {},
        name=name,
    ).start()
    try:
        wait_ready(neuron, timeout)
    except BaseException:
        neuron.stop()
        raise
    return neuron


def wait_ready(neuron: Proc, timeout: float = 180.0) -> None:
    """Until /health says the daemon is ready (every default model settled): its own
    status, not a model's activation status, which reads the same in the text."""
    neuron.wait_http("/health", timeout=timeout)
    wait_until(lambda: get_json(neuron.url + "/health")["status"] == "ready", timeout, "ready")


@dataclass
class Gateway(Proc):
    """A `cortex serve` process and the calls tests make to it."""

    metrics_port: int = 0
    config: Path = field(default_factory=Path)

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.metrics_port}/metrics"

    def get(self, path: str, **kw: Any) -> Reply:
        return http("GET", self.url + path, **kw)

    def post(self, path: str, body: Any, **kw: Any) -> Reply:
        return http("POST", self.url + path, body, **kw)

    def fleet(self) -> dict[str, Any]:
        return self.get("/fleet").json()

    def node(self, name: str) -> dict[str, Any]:
        return next(n for n in self.fleet()["nodes"] if n["name"] == name)

    def models_on(self, name: str) -> dict[str, str]:
        return {m["id"]: m["status"] for m in self.node(name)["models"]}

    def chat(self, model: str, max_tokens: int = 4, **extra: Any) -> Reply:
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


def start_gateway(
    workdir: Path,
    neurons: list[Neuron],
    models: list[dict[str, Any]],
    aliases: dict[str, str] | None = None,
    name: str = "cortex",
    loaded: tuple[str, ...] = (),
    nodes_up: int | None = None,
    env: dict[str, str] | None = None,
    **sections: dict[str, Any],
) -> Gateway:
    """A `cortex serve` process; `sections` add to or override cortex.toml tables. It waits
    for `nodes_up` nodes (all by default; 0 for neurons not started yet)."""
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
        lines += [f"{k} = {_toml(v)}" for k, v in values.items()]
    for neuron in neurons:
        lines += ["[[neurons]]", f'name = "{neuron.name}"', f'endpoint = "{neuron.url}"']
    config = workdir / f"{name}.toml"
    config.write_text("\n".join(lines) + "\n")
    model_lines = []
    for model in models:
        model_lines.append("[[models]]")
        model_lines += [f"{k} = {_toml(v)}" for k, v in model.items()]
    model_lines.append("[aliases]")
    model_lines += [f"{json.dumps(k)} = {json.dumps(v)}" for k, v in (aliases or {}).items()]
    (workdir / f"{name}-models.toml").write_text("\n".join(model_lines) + "\n")
    gateway = Gateway(
        ["cortex.cli.main", "serve", "-c", str(config)],
        log=workdir / f"{name}.log",
        url=f"http://127.0.0.1:{port}",
        metrics_port=metrics_port,
        config=config,
        env=env or {},
    ).start()
    try:
        gateway.wait_http("/health", timeout=60)
        up = len(neurons) if nodes_up is None else nodes_up
        wait_until(lambda: gateway.get("/health").body["nodes_up"] == up, 120, "nodes up")
        if loaded:
            wait_until(lambda: all_loaded(gateway, loaded), 30, f"{loaded} loaded")
    except BaseException:
        gateway.stop()
        raise
    return gateway


def all_loaded(gateway: Gateway, models: tuple[str, ...]) -> bool:
    data = gateway.get("/v1/models").json()["data"]
    return all(any(m["id"] == want and m["loaded_on"] for m in data) for want in models)

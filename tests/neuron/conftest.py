"""Real `neuron serve` processes on loopback, shared per module or session."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from neuron.demo import DEMO_MODEL_ID, fetch_demo
from tests.support.procs import Proc, free_port


def _toml(value: Any) -> str:
    return json.dumps(str(value)) if isinstance(value, Path) else json.dumps(value)


def write_config(path: Path, settings: dict[str, Any], defaults: list[str]) -> Path:
    lines = [f"{key} = {_toml(value)}" for key, value in settings.items()]
    for model in defaults:
        lines += ["[[default_models]]", f"model_id = {_toml(model)}"]
    path.write_text("\n".join(lines) + "\n")
    return path


def start_neuron(
    workdir: Path,
    models_dir: Path,
    defaults: list[str],
    env: dict[str, str] | None = None,
    timeout: float = 180.0,
    module: str = "neuron.cli",
    **settings: Any,
) -> Proc:
    """Start `python -m <module> serve` and wait until it is ready."""
    port = free_port()
    workdir.mkdir(parents=True, exist_ok=True)
    base = {"port": port, "listen": "127.0.0.1", "models_dir": models_dir, "cpu_kv_cache_mb": 64}
    config = write_config(workdir / "neuron.toml", {**base, **settings}, defaults)
    proc = Proc(
        [module, "serve", "-c", str(config)],
        log=workdir / "neuron.log",
        url=f"http://127.0.0.1:{port}",
        env=env or {},
    ).start()
    try:
        wait_ready(proc, timeout)
    except BaseException:
        proc.stop()
        raise
    return proc


def wait_ready(proc: Proc, timeout: float = 180.0) -> None:
    """Until /health says the daemon is ready (every default model settled)."""
    deadline = time.monotonic() + timeout
    proc.wait_http("/health", timeout=timeout)
    while get_json(proc, "/health")["status"] != "ready":
        if time.monotonic() > deadline:
            raise TimeoutError(f"{proc.url} not ready after {timeout}s:\n{proc.tail()}")
        time.sleep(0.1)


def get_json(proc: Proc, path: str, token: str | None = None) -> Any:
    request = urllib.request.Request(proc.url + path)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    with urllib.request.urlopen(request, timeout=30) as resp:
        return json.loads(resp.read())


def post(
    proc: Proc,
    path: str,
    body: Any = None,
    raw: bytes | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = 120.0,
) -> tuple[int, Any]:
    """POST JSON (or raw bytes); returns (status, parsed JSON body) for any status."""
    data = raw if raw is not None else json.dumps(body).encode()
    request = urllib.request.Request(proc.url + path, data=data, method="POST")
    request.add_header("Content-Type", "application/json")
    for key, value in (headers or {}).items():
        request.add_header(key, value)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        payload = err.read()
        err.close()
        return err.code, json.loads(payload)


def loaded(proc: Proc, model_id: str) -> dict[str, Any]:
    models = get_json(proc, "/models")["loaded"]
    return next(m for m in models if m["id"] == model_id)


@pytest.fixture(scope="session")
def neuron_models(models_root: Path, tiny_model_factory) -> Path:
    """models_dir with the tiny llama, a second tiny model and the demo GGUF."""
    tiny_model_factory("llama")
    tiny_model_factory("qwen2")
    fetch_demo(models_root)
    return models_root


@pytest.fixture(scope="session")
def shared_neuron(neuron_models: Path, tmp_path_factory) -> Iterator[Proc]:
    """One daemon for most API tests: the tiny llama and the demo GGUF."""
    proc = start_neuron(
        tmp_path_factory.mktemp("shared-neuron"),
        neuron_models,
        ["tiny-llama", DEMO_MODEL_ID],
    )
    yield proc
    code = proc.stop()
    assert code == 0, proc.tail()


@pytest.fixture
def client(shared_neuron: Proc):
    import openai

    with openai.OpenAI(base_url=shared_neuron.url + "/v1", api_key="unused", max_retries=0) as c:
        yield c

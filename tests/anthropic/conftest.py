"""A real gateway in front of a real neuron, shared by the Anthropic end-to-end tests.

The neuron serves two scripted models (fixed answers: a tool call, a text with
emoji, CJK and a stop word) and the demo GGUF (a real model, for greedy
decoding); the gateway knows one more scripted model that nobody has loaded, so
a request for it waits on a cold load.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from neuron.demo import DEMO_MODEL_ID, fetch_demo
from tests.support.procs import Proc, free_port
from tests.support.scripted_model import make_scripted_model

TOOL_SCRIPT = (
    "Let me check. <tool_call>\n"
    '{"name": "get_weather", "arguments": {"city": "Zürich", "unit": "°C"}}\n</tool_call>'
)
TEXT_SCRIPT = "Hello 🎉 世界! Ünïcödé fine. STOP and more"
LONG_MODEL = "scripted-long"  # a long answer, for a stream cut off half way
DEFAULT_MODELS = ("scripted-tool", "scripted-text", DEMO_MODEL_ID)
COLD_MODEL = "scripted-cold"
ALIAS = "claude-scripted"


@dataclass
class Reply:
    """A raw HTTP answer: status, headers and the whole body."""

    status_code: int
    headers: dict[str, str]
    content: bytes

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", "replace")

    def json(self) -> Any:
        return json.loads(self.content)


def http(method: str, url: str, body: bytes | None = None, **headers: str) -> Reply:
    request = urllib.request.Request(url, data=body, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=120) as resp:
            return Reply(resp.status, {k.lower(): v for k, v in resp.headers.items()}, resp.read())
    except urllib.error.HTTPError as err:
        return Reply(err.code, {k.lower(): v for k, v in err.headers.items()}, err.read())


@dataclass
class Stack:
    neuron: Proc
    gateway: Proc

    @property
    def url(self) -> str:
        return self.gateway.url

    def post(self, path: str, body: Any, **headers: str) -> Reply:
        """A raw POST (bytes in, bytes out) for tests that check the wire itself."""
        content = body if isinstance(body, bytes) else json.dumps(body).encode()
        return http(
            "POST", self.url + path, content, **{"content-type": "application/json", **headers}
        )


def _toml(value: Any) -> str:
    return json.dumps(str(value) if isinstance(value, Path) else value)


def _lines(table: dict[str, Any]) -> list[str]:
    return [f"{key} = {_toml(value)}" for key, value in table.items()]


def start_neuron(workdir: Path, models_dir: Path, defaults: list[str]) -> Proc:
    """`neuron serve` with the scripted architecture registered; waits until ready."""
    port = free_port()
    settings = {"port": port, "listen": "127.0.0.1", "models_dir": models_dir,
                "cpu_kv_cache_mb": 64, "max_batch_size": 8}  # fmt: skip
    lines = _lines(settings)
    for model in defaults:
        lines += ["[[default_models]]", f"model_id = {_toml(model)}"]
    config = workdir / "neuron.toml"
    config.write_text("\n".join(lines) + "\n")
    proc = Proc(["tests.support.scripted_model", "serve", "-c", str(config)],
                log=workdir / "neuron.log", url=f"http://127.0.0.1:{port}")  # fmt: skip
    proc.start()
    try:
        proc.wait_http("/health", timeout=180, ready='"status": "ready"')
        _wait_activated(proc)
    except BaseException:
        proc.stop()
        raise
    return proc


def _wait_activated(neuron: Proc, timeout: float = 180.0) -> None:
    """Wait for the default models to finish loading; fail at once if one cannot."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        activation = http("GET", neuron.url + "/health").json()["activation"]
        states = {model: a["status"] for model, a in activation.items()}
        if all(state in ("ready", "failed") for state in states.values()):
            failed = {m: a for m, a in activation.items() if a["status"] == "failed"}
            assert not failed, f"default models failed to load: {failed}"
            return
        time.sleep(0.2)
    raise TimeoutError(f"default models still loading after {timeout}s:\n{neuron.tail()}")


def start_gateway(workdir: Path, neuron: Proc, loaded: tuple[str, ...]) -> Proc:
    """`cortex serve` in front of one neuron; waits until it sees the loaded models."""
    port = free_port()
    (workdir / "models.toml").write_text(
        f'[[models]]\nid = "{COLD_MODEL}"\n\n[aliases]\n"{ALIAS}" = "scripted-text"\n'
    )
    sections = {
        "gateway": {"listen": f"127.0.0.1:{port}", "metrics_listen": f"127.0.0.1:{free_port()}"},
        "poller": {"interval_seconds": 0.5, "timeout_seconds": 5.0},
        "routing": {"keepalive_seconds": 0.02},
    }
    lines = ['models_config = "models.toml"']
    for name, table in sections.items():
        lines += [f"[{name}]", *_lines(table)]
    lines += ["[[neurons]]", 'name = "n1"', f'endpoint = "{neuron.url}"']
    config = workdir / "cortex.toml"
    config.write_text("\n".join(lines) + "\n")
    proc = Proc(["cortex.cli.main", "serve", "-c", str(config)], log=workdir / "cortex.log",
                url=f"http://127.0.0.1:{port}").start()  # fmt: skip
    try:
        proc.wait_http("/health", timeout=60, ready='"nodes_up": 1')
        _wait_loaded(proc, loaded)
    except BaseException:
        proc.stop()
        raise
    return proc


def _wait_loaded(gateway: Proc, models: tuple[str, ...], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        data = http("GET", gateway.url + "/v1/models").json()["data"]
        if all(any(m["id"] == want and m["loaded_on"] for m in data) for want in models):
            return
        time.sleep(0.2)
    raise TimeoutError(f"the gateway never saw {models} loaded:\n{gateway.tail()}")


@pytest.fixture(scope="session")
def anthropic_models(models_root: Path) -> Path:
    make_scripted_model(models_root, "scripted-tool", TOOL_SCRIPT)
    make_scripted_model(models_root, "scripted-text", TEXT_SCRIPT)
    make_scripted_model(models_root, COLD_MODEL, TEXT_SCRIPT)
    make_scripted_model(models_root, LONG_MODEL, "tick " * 1500)
    fetch_demo(models_root)
    return models_root


def _stop_all(*procs: Proc) -> None:
    for proc in procs:
        code = proc.stop()
        assert code == 0, proc.tail()


def run_stack(workdir: Path, models_dir: Path, defaults: tuple[str, ...]) -> Iterator[Stack]:
    """A neuron serving `defaults` and a gateway in front, for a fixture to yield from."""
    neuron = start_neuron(workdir, models_dir, list(defaults))
    try:
        gateway = start_gateway(workdir, neuron, defaults)
    except BaseException:
        neuron.stop()
        raise
    yield Stack(neuron, gateway)
    _stop_all(gateway, neuron)


@pytest.fixture(scope="session")
def stack(anthropic_models: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    yield from run_stack(
        tmp_path_factory.mktemp("anthropic-stack"), anthropic_models, DEFAULT_MODELS
    )


@pytest.fixture(scope="session")
def anthropic_client(stack: Stack):
    import anthropic

    with anthropic.Anthropic(base_url=stack.url, api_key="unused", max_retries=0) as client:
        yield client


@pytest.fixture(scope="session")
def openai_client(stack: Stack):
    import openai

    with openai.OpenAI(base_url=stack.url + "/v1", api_key="unused", max_retries=0) as client:
        yield client

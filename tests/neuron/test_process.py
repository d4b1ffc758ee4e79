"""The daemon as systemd sees it: config errors, notify/watchdog, auth, saturation,
restart in place, and SIGTERM during a stream."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import aiohttp
import pytest

from neuron.demo import DEMO_MODEL_ID
from tests.support.daemons import start_neuron, wait_ready, write_neuron_config
from tests.support.http import http

TOKEN = "s3cret-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.mark.parametrize(
    ("settings", "env", "key", "expected"),
    [
        ({"port": "abc"}, {}, "port", "an integer"),
        ({"port": 70000}, {}, "port", "a port in 1..65535"),
        ({"kv_cache_memory_fraction": 1.5}, {}, "kv_cache_memory_fraction", "a fraction"),
        ({"no_such_key": 1}, {}, "no_such_key", "a known key"),
        ({}, {"NEURON_MAX_BATCH_SIZE": "many"}, "max_batch_size", "an integer"),
    ],
)
def test_bad_config_exits_2_with_one_line(tmp_path, settings, env, key, expected):
    config = write_neuron_config(tmp_path / "neuron.toml", {"models_dir": "m", **settings}, [])
    result = subprocess.run(
        [sys.executable, "-m", "neuron.cli", "serve", "-c", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **env},
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert key in lines[0] and expected in lines[0]
    where = "$NEURON_MAX_BATCH_SIZE" if env else str(config)
    assert where in lines[0]


class NotifyListener:
    """A NOTIFY_SOCKET, as systemd provides it, collecting every datagram."""

    def __init__(self) -> None:
        self.path = Path(tempfile.mkdtemp(prefix="nfy", dir="/tmp")) / "notify"
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(self.path))
        self.sock.settimeout(0.2)
        self.messages: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.messages.append(self.sock.recv(4096).decode())
            except TimeoutError:
                continue

    def wait_for(self, message: str, after: int = 0, timeout: float = 30.0) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for i, seen in enumerate(self.messages[after:], start=after):
                if message in seen.splitlines():
                    return i
            time.sleep(0.05)
        raise AssertionError(f"{message} not among {self.messages[after:]}")

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.sock.close()
        self.path.unlink()
        self.path.parent.rmdir()


@pytest.fixture(scope="module")
def listener():
    listener = NotifyListener()
    yield listener
    listener.close()


@pytest.fixture(scope="module")
def guarded(neuron_models, tmp_path_factory, listener):
    """A neuron with a token, room for one request, and systemd's notify socket."""
    env = {"NOTIFY_SOCKET": str(listener.path), "WATCHDOG_USEC": "400000"}
    proc = start_neuron(
        tmp_path_factory.mktemp("guarded"),
        neuron_models,
        ["tiny-llama"],
        env=env,
        token=TOKEN,
        max_batch_size=1,
        max_waiting=0,
    )
    yield proc
    proc.stop()


def test_notify_ready_and_watchdog(guarded, listener):
    ready = listener.wait_for("READY=1")
    listener.wait_for("WATCHDOG=1", after=ready)
    first = listener.wait_for("WATCHDOG=1", after=ready)
    listener.wait_for("WATCHDOG=1", after=first + 1)  # it keeps pinging


def test_bearer_token_guards_all_but_health_and_metrics(guarded):
    assert guarded.get_json("/health")["status"] == "ready"
    assert b"neuron_requests_total" in http("GET", guarded.url + "/metrics").content
    status, body, _ = guarded.post("/v1/completions", {"model": "tiny-llama", "prompt": "a"})
    assert status == 401 and body["error"]["type"] == "authentication_error"
    status, _, _ = guarded.post(
        "/v1/completions",
        {"model": "tiny-llama", "prompt": "a", "max_tokens": 1},
        headers=AUTH,
    )
    assert status == 200
    assert guarded.get_json("/models", token=TOKEN)["loaded"][0]["id"] == "tiny-llama"


async def test_full_queue_answers_503_with_retry_after(guarded):
    long = {
        "model": "tiny-llama",
        "prompt": "x",
        "max_tokens": 400,
        "ignore_eos": True,
        "stream": True,
    }
    async with (
        aiohttp.ClientSession(headers=AUTH) as session,
        session.post(guarded.url + "/v1/completions", json=long) as first,
    ):
        await first.content.readline()
        second = await session.post(guarded.url + "/v1/completions", json={**long, "stream": False})
        assert second.status == 503
        assert int(second.headers["Retry-After"]) >= 1
        assert (await second.json())["error"]["type"] == "overloaded_error"


def test_admin_restart_reexecutes_in_place(guarded, listener):
    pid = guarded.popen.pid
    seen = len(listener.messages)
    asked = time.monotonic()
    status, body, _ = guarded.post("/admin/restart", {}, headers=AUTH)
    assert status == 202 and body["status"] == "restarting"
    listener.wait_for("READY=1", after=seen, timeout=120)
    wait_ready(guarded, timeout=120)
    assert guarded.popen.poll() is None and guarded.popen.pid == pid
    # A fresh process: its uptime counts from after the restart was asked for.
    health = guarded.get_json("/health", token=TOKEN)
    assert health["uptime_seconds"] <= time.monotonic() - asked


async def test_sigterm_during_stream_finishes_it_and_exits_0(guarded):
    body = {
        "model": "tiny-llama",
        "prompt": "x",
        "max_tokens": 30,
        "ignore_eos": True,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    async with (
        aiohttp.ClientSession(headers=AUTH) as session,
        session.post(guarded.url + "/v1/completions", json=body) as resp,
    ):
        await resp.content.readline()
        guarded.signal(signal.SIGTERM)
        lines = [line async for line in resp.content if line.startswith(b"data: ")]
    assert lines[-1] == b"data: [DONE]\n"
    assert json.loads(lines[-2][6:])["usage"]["completion_tokens"] == 30
    assert guarded.popen.wait(60) == 0


def test_fetch_demo_places_the_gguf_where_serve_finds_it(tmp_path):
    from neuron.models.resolve import resolve_model

    result = subprocess.run(
        [sys.executable, "-m", "neuron.cli", "fetch-demo", "--models-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    source = resolve_model(DEMO_MODEL_ID, tmp_path)
    assert source.format == "gguf" and source.path.is_relative_to(tmp_path)
    assert str(source.path) in result.stdout

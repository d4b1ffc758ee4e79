"""`cortex up`: the demo model served through a local gateway, stopped by one Ctrl-C."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import openai

from tests.support.http import http, wait_until
from tests.support.procs import free_port


def test_cortex_up_serves_the_demo_and_stops_both(tmp_path, demo_gguf) -> None:
    port, metrics_port, neuron_port = free_port(), free_port(), free_port()
    log = (tmp_path / "up.log").open("wb")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "cortex.cli.main",
            "up",
            "--models-dir",
            str(tmp_path / "models"),
            "--port",
            str(port),
            "--metrics-port",
            str(metrics_port),
            "--neuron-port",
            str(neuron_port),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:

        def loaded():
            try:
                return [
                    m
                    for m in http("GET", base + "/v1/models", timeout=5).body["data"]
                    if m["loaded_on"] == ["local"] and m["alias_of"] is None
                ]
            except OSError:
                return None

        (model,) = wait_until(loaded, 240, "demo model loaded")
        assert model["id"].startswith("HuggingFaceTB/SmolLM2-135M-Instruct")
        assert (tmp_path / "models" / "HuggingFaceTB" / "SmolLM2-135M-Instruct").is_dir()
        client = openai.OpenAI(base_url=base + "/v1", api_key="none", max_retries=0)
        reply = client.chat.completions.create(
            model="smollm2",  # the alias `cortex up` documents
            messages=[{"role": "user", "content": "What is the capital of France?"}],
            max_tokens=12,
            temperature=0,
        )
        assert "Paris" in reply.choices[0].message.content
    finally:
        os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in a terminal does: the whole group
        try:
            code = proc.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            raise
    assert code == 0, (tmp_path / "up.log").read_text()
    for dead in (port, neuron_port):
        try:
            http("GET", f"http://127.0.0.1:{dead}/health", timeout=2)
            raise AssertionError(f"port {dead} still answers after Ctrl-C")
        except OSError:
            pass

"""A neuron killed during a stream: the client gets an error end, the node is marked down,
traffic moves to the other node, and after a restart the node and its pinned model return."""

from __future__ import annotations

import signal
import time

import openai
import pytest

from tests.support.affinity import key_homing_on
from tests.support.http import wait_until

MODEL = "tiny-llama"


@pytest.fixture(scope="module")
def fleet(procs):
    f1, f2 = procs.neuron("f1"), procs.neuron("f2")
    gateway = procs.gateway(
        [f1, f2],
        [{"id": MODEL, "vram_mb": 100, "pinned_on": ["f1"]}],
        poller={"interval_seconds": 0.5, "unhealthy_after": 4},
    )
    wait_until(lambda: f1.loaded().get(MODEL) == "ready", 60, "pinned model on f1")
    return f1, f2, gateway


def test_kill_during_stream_then_restart(fleet, procs) -> None:
    f1, _f2, gateway = fleet
    client = openai.OpenAI(base_url=gateway.url + "/v1", api_key="none", max_retries=0)
    stream = client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "hi"}],
        max_tokens=3000,
        stream=True,
        extra_body={"ignore_eos": True},  # a random tiny model must not end it early
    )
    assert stream.response.headers["x-cortex-node"] == "f1"
    received = 0
    with pytest.raises(openai.APIError) as info:
        for _ in stream:
            received += 1
            if received == 3:
                f1.signal(signal.SIGKILL)
    assert "f1" in info.value.message and "during the stream" in info.value.message
    assert 3 <= received < 3000

    # The next request goes to f2, whether the gateway has noticed yet or retries there.
    status, body, headers = gateway.chat(MODEL)
    assert status == 200, body
    assert headers["x-cortex-node"] == "f2"
    wait_until(lambda: gateway.node("f1")["state"] == "down", 30, "f1 marked down")
    assert gateway.node("f1")["last_error"]
    status, _, headers = gateway.chat(MODEL)
    assert status == 200 and headers["x-cortex-node"] == "f2"

    f1.popen.wait()
    procs.neuron("f1", port=f1.port)
    wait_until(lambda: gateway.node("f1")["state"] == "up", 60, "f1 back up")
    wait_until(lambda: f1.loaded().get(MODEL) == "ready", 60, "pinned model back on f1")
    wait_until(lambda: gateway.models_on("f1").get(MODEL) == "ready", 30, "gateway sees it")
    # A conversation whose rendezvous node is f1 goes to it again.
    status, _, headers = gateway.chat(MODEL, user=key_homing_on("f1", ["f1", "f2"]))
    assert status == 200 and headers["x-cortex-node"] == "f1"


def test_stalled_stream_is_cut_but_a_long_one_is_not(fleet, procs) -> None:
    _, f2, _ = fleet
    gateway = procs.gateway(
        [f2],
        [{"id": MODEL, "vram_mb": 100}],
        name="stall",
        upstream={"stream_idle_timeout_seconds": 1},
    )
    client = openai.OpenAI(base_url=gateway.url + "/v1", api_key="none", max_retries=0)
    stream = client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "hi"}],
        max_tokens=3000,
        stream=True,
        extra_body={"ignore_eos": True},  # a random tiny model must not end it early
    )
    chunks = iter(stream)
    began = time.monotonic()
    while time.monotonic() - began < 2.5:  # longer than the idle timeout, tokens flowing
        assert next(chunks).choices[0].finish_reason is None
    f2.signal(signal.SIGSTOP)
    try:
        with pytest.raises(openai.APIError) as info:
            for _ in chunks:
                pass
        assert "stalled" in info.value.message
    finally:
        f2.signal(signal.SIGCONT)
    wait_until(lambda: gateway.node("f2")["state"] == "up", 30, "f2 answers again")

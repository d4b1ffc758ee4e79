"""A node that breaks off a non-streamed answer: the gateway retries once on another
node, in both dialects, and the client sees one clean answer."""

from __future__ import annotations

import anthropic
import openai
import pytest

from tests.support.affinity import key_homing_on
from tests.support.daemons import Neuron
from tests.support.http import http, wait_until
from tests.support.procs import free_port

MODEL = "tiny-llama"


@pytest.fixture(scope="module")
def nodes(procs):
    port = free_port()
    broken = Neuron(
        ["tests.support.breaking_node", "--port", str(port)],
        procs.workdir / "broken.log",
        f"http://127.0.0.1:{port}",
        name="broken",
    ).start()
    procs.started.append(broken)
    broken.wait_http("/health")
    good = procs.neuron("good")
    for node in (broken, good):
        status, body, _ = http("POST", node.url + "/models/load", {"model_id": MODEL})
        assert status == 200, body
    return broken, good


@pytest.mark.parametrize("dialect", ["openai", "anthropic"])
def test_broken_answer_is_retried_on_another_node(procs, nodes, dialect) -> None:
    broken, good = nodes
    # A fresh gateway per dialect (the broken node is healthy to it), and a conversation
    # whose node is the broken one.
    gateway = procs.gateway([broken, good], [{"id": MODEL, "vram_mb": 100}], name=dialect)
    wait_until(lambda: gateway.get("/health").body.get("nodes_up") == 2, 30, "both nodes up")
    before = len(http("GET", broken.url + "/hits").body)
    if dialect == "openai":
        client = openai.OpenAI(base_url=gateway.url + "/v1", api_key="x", max_retries=0)
        raw = client.chat.completions.with_raw_response.create(
            model=MODEL,
            messages=[{"role": "user", "content": "hi"}],
            max_tokens=4,
            user=key_homing_on("broken", ["broken", "good"]),
        )
        assert raw.headers["x-cortex-node"] == "good"
        assert raw.parse().usage.completion_tokens >= 1
    else:
        client = anthropic.Anthropic(base_url=gateway.url, api_key="x", max_retries=0)
        message = client.messages.create(
            model=MODEL,
            max_tokens=4,
            messages=[{"role": "user", "content": "hi"}],
            metadata={"user_id": key_homing_on("broken", ["broken", "good"], kind="user_id")},
        )
        assert message.usage.output_tokens >= 1
    assert len(http("GET", broken.url + "/hits").body) == before + 1

"""First contact, as `cortex up` has it: the gateway answers before its neuron is up, lists
the configured models with their status, and a request waits for the model to load."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from tests.support.anthropic_stack import COLD_MODEL, TEXT_SCRIPT
from tests.support.daemons import Neuron, start_gateway, start_neuron
from tests.support.http import http
from tests.support.procs import free_port

pytestmark = pytest.mark.slow
ASK = {"max_tokens": 64, "messages": [{"role": "user", "content": "Hi"}]}
ANTHROPIC = {"anthropic-version": "2023-06-01"}


def test_a_request_waits_for_a_neuron_still_coming_up(
    anthropic_models: Path, tmp_path: Path
) -> None:
    port = free_port()
    absent = Neuron([], log=tmp_path / "absent.log", url=f"http://127.0.0.1:{port}", name="n1")
    # Many failed polls still count as "coming up" (as in `cortex up`).
    gateway = start_gateway(tmp_path, [absent], [{"id": COLD_MODEL}],
                            aliases={"claude-*": COLD_MODEL}, nodes_up=0,
                            poller={"unhealthy_after": 1000})  # fmt: skip
    neuron = None
    try:
        assert http("HEAD", gateway.url + "/").status == 200
        assert http("GET", gateway.url + "/").json()["service"] == "cortex"
        listed = http("GET", gateway.url + "/v1/models").json()["data"]
        statuses = {m["id"]: m["status"] for m in listed}
        assert statuses == {COLD_MODEL: "unavailable", "claude-*": "unavailable"}
        page = http("GET", gateway.url + "/v1/models?limit=1", headers=ANTHROPIC).json()
        assert [m["id"] for m in page["data"]] == ["claude-*"] and page["has_more"] is True
        rest = http("GET", gateway.url + "/v1/models?limit=1&after_id=claude-*", headers=ANTHROPIC)
        rest = rest.json()
        assert [m["id"] for m in rest["data"]] == [COLD_MODEL] and rest["has_more"] is False

        answers: list = []
        body = json.dumps({"model": "claude-sonnet-4-5", **ASK}).encode()
        headers = {"content-type": "application/json"}

        def ask_now() -> None:
            answers.append(http("POST", gateway.url + "/v1/messages", body, headers=headers))

        ask = threading.Thread(target=ask_now)
        ask.start()
        neuron = start_neuron(tmp_path, anthropic_models, [COLD_MODEL], name="n1", port=port,
                              module="tests.support.scripted_model")  # fmt: skip
        ask.join(120)
        [reply] = answers
        assert reply.status == 200, reply.text
        assert reply.json()["content"][0]["text"] == TEXT_SCRIPT
    finally:
        gateway.stop()
        if neuron is not None:
            neuron.stop()

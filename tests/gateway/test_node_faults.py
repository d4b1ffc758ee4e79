"""Which failures move a request to another replica, and how often: a hung neuron
(SIGSTOP) is abandoned at the first-byte deadline and marked suspect; input the neuron
cannot tokenize is its 400, sent to one node only; a request moves at most once."""

from __future__ import annotations

import signal
import time

import openai
import pytest

from tests.support.affinity import key_homing_on
from tests.support.http import metric_sum, scrape, wait_until

MODEL = "tiny-llama"
FIRST_BYTE = 2.0


def chat_requests(neuron) -> float:
    """Chat requests the neuron has answered (any status)."""
    samples = scrape(neuron.url + "/metrics")
    return metric_sum(samples, "neuron_requests_total", endpoint="/v1/chat/completions")


@pytest.fixture(scope="module")
def pair(procs):
    s1, s2 = procs.neurons_holding(MODEL, "s1", "s2")
    gateway = procs.gateway(
        [s1, s2],
        [],
        name="faults",
        upstream={"first_byte_timeout_seconds": FIRST_BYTE},
        # Polls of a stopped node time out, but never mark it down here: what keeps
        # traffic away from it is the suspect mark alone.
        poller={"interval_seconds": 0.5, "timeout_seconds": 1, "unhealthy_after": 1000},
    )
    wait_until(lambda: all(gateway.models_on(n).get(MODEL) == "ready" for n in ("s1", "s2")))
    return s1, s2, gateway


def test_lone_surrogate_is_the_neurons_400_sent_once(pair):
    s1, s2, gateway = pair
    before = chat_requests(s1), chat_requests(s2)
    raw = b'{"model": "tiny-llama", "max_tokens": 2, '
    raw += b'"messages": [{"role": "user", "content": "a\\ud800b"}]}'
    status, body, _ = gateway.post("/v1/chat/completions", raw)
    assert status == 400, body
    assert body["error"]["param"] == "messages" and "surrogate" in body["error"]["message"]
    seen = sorted([chat_requests(s1) - before[0], chat_requests(s2) - before[1]])
    assert seen == [0, 1]

    raw = b'{"model": "tiny-llama", "max_tokens": 2, "prompt": "x\\udfff"}'
    status, body, _ = gateway.post("/v1/completions", raw)
    assert status == 400 and body["error"]["param"] == "prompt", body


def test_a_hung_node_is_abandoned_at_the_deadline_and_kept_out(pair):
    s1, _s2, gateway = pair
    before = chat_requests(s1)
    on_s1 = key_homing_on("s1", ["s1", "s2"])  # a conversation whose node is s1
    assert gateway.chat(MODEL, user=on_s1).headers["x-cortex-node"] == "s1"
    s1.signal(signal.SIGSTOP)
    try:
        sent = time.monotonic()
        status, body, headers = gateway.chat(MODEL, user=on_s1)
        took = time.monotonic() - sent
        assert status == 200, body
        assert headers["x-cortex-node"] == "s2"
        assert took <= FIRST_BYTE + 1, took
        node = gateway.node("s1")
        assert node["state"] == "suspect" and "first_byte_timeout" in node["last_error"]

        client = openai.OpenAI(base_url=gateway.url + "/v1", api_key="none", max_retries=0)
        for i in range(3):  # new conversations, which no affinity ties to s2
            assert gateway.chat(MODEL, user=f"while-{i}").headers["x-cortex-node"] == "s2"
            stream = client.chat.completions.create(
                model=MODEL,
                messages=[{"role": "user", "content": f"stream {i}"}],
                max_tokens=2,
                stream=True,
            )
            assert stream.response.headers["x-cortex-node"] == "s2"
            assert list(stream)
    finally:
        s1.signal(signal.SIGCONT)
    wait_until(lambda: gateway.node("s1")["state"] == "up", 30, "s1 answering again")
    # The first request above, and perhaps the abandoned one (if s1 read it on waking).
    assert chat_requests(s1) - before <= 2
    # Traffic returns once it answers: s1's conversation goes back to it.
    assert gateway.chat(MODEL, user=on_s1).headers["x-cortex-node"] == "s1"


def test_a_request_moves_at_most_once(pair):
    s1, s2, gateway = pair
    wait_until(lambda: gateway.node("s2")["state"] == "up", 30, "s2 up")
    retries_before = _retries(gateway)
    for neuron in (s1, s2):
        neuron.signal(signal.SIGSTOP)
    try:
        status, body, _ = gateway.chat(MODEL)
        assert status == 504, body
        assert "first_byte_timeout_seconds" in body["error"]["message"]
    finally:
        for neuron in (s1, s2):
            neuron.signal(signal.SIGCONT)
    assert _retries(gateway) - retries_before == 1  # s1, then s2, then the error: no more


def _retries(gateway) -> int:
    return gateway.log.read_text(errors="replace").count("retrying on another node")

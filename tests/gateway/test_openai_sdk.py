"""The official openai SDK through the gateway to a real neuron: streams, usage, errors."""

from __future__ import annotations

import http.client

import openai
import pytest

from tests.support.http import http as call

MODEL = "tiny-llama"


@pytest.fixture(scope="module")
def gateway(procs):
    neuron = procs.neuron("s1")
    return procs.gateway(
        [neuron],
        [{"id": MODEL, "vram_mb": 100}, {"id": "tiny-qwen2", "vram_mb": 100}],
        aliases={"gpt-4o-mini": MODEL},
        routing={"keepalive_seconds": 0.05, "max_wait_seconds": 120},
    )


@pytest.fixture
def client(gateway) -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway.url + "/v1", api_key="none", max_retries=0)


def test_chat_with_usage(client) -> None:
    reply = client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "Hello"}], max_tokens=5
    )
    assert reply.model == MODEL
    assert reply.choices[0].message.role == "assistant"
    assert reply.choices[0].finish_reason in ("length", "stop")
    assert reply.usage.prompt_tokens > 0 and 0 < reply.usage.completion_tokens <= 5
    assert reply.usage.total_tokens == reply.usage.prompt_tokens + reply.usage.completion_tokens


def test_stream_usage_only_when_asked(client) -> None:
    def run(**extra):
        return list(
            client.chat.completions.create(
                model=MODEL,
                messages=[{"role": "user", "content": "Hello"}],
                max_tokens=6,
                stream=True,
                **extra,
            )
        )

    plain = run()
    assert all(chunk.usage is None for chunk in plain)
    assert all(chunk.choices for chunk in plain), "the usage-only chunk is not passed on"
    assert plain[-1].choices[0].finish_reason in ("length", "stop")
    text = "".join(c.choices[0].delta.content or "" for c in plain)
    assert text

    with_usage = run(stream_options={"include_usage": True})
    assert with_usage[-1].choices == [] and with_usage[-1].usage.completion_tokens > 0
    assert with_usage[-1].usage.completion_tokens <= 6


def test_legacy_completions(client) -> None:
    reply = client.completions.create(model=MODEL, prompt="Once upon", max_tokens=4)
    assert reply.choices[0].text is not None and reply.usage.completion_tokens <= 4
    chunks = list(client.completions.create(model=MODEL, prompt="Once", max_tokens=4, stream=True))
    assert chunks and chunks[-1].choices[0].finish_reason in ("length", "stop")


def test_errors(client, gateway) -> None:
    with pytest.raises(openai.NotFoundError) as info:
        client.chat.completions.create(model="nope", messages=[{"role": "user", "content": "x"}])
    assert info.value.code == "model_not_found" and "nope" in info.value.message
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(
            model="nope", messages=[{"role": "user", "content": "x"}], stream=True
        )
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model=MODEL, messages="not a list")
    assert info.value.param == "messages"
    with pytest.raises(openai.BadRequestError):  # rejected by the neuron, relayed as is
        client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "x"}], temperature=-3
        )
    status, body, _ = call("POST", gateway.url + "/v1/chat/completions", b"{not json")
    assert status == 400 and "not valid JSON" in body["error"]["message"]
    status, body, _ = call("POST", gateway.url + "/v1/chat/completions", [1, 2])
    assert status == 400 and body["error"]["type"] == "invalid_request_error"
    status, body, _ = call("GET", gateway.url + "/v1/nothing-here")
    assert status == 404 and "error" in body


def test_waiting_stream_gets_keepalives(gateway) -> None:
    """A stream for a model still loading receives SSE comments until its first chunk."""
    conn = http.client.HTTPConnection("127.0.0.1", gateway.port, timeout=120)
    body = (
        '{"model": "tiny-qwen2", "stream": true, "max_tokens": 3,'
        ' "messages": [{"role": "user", "content": "hi"}]}'
    )
    conn.request("POST", "/v1/chat/completions", body, {"Content-Type": "application/json"})
    raw = conn.getresponse().read()
    conn.close()
    assert raw.startswith(b": keepalive\n\n")
    assert b'"chat.completion.chunk"' in raw and raw.endswith(b"data: [DONE]\n\n")

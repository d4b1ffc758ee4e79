"""Bad requests get a 4xx OpenAI error envelope, and the daemon keeps serving."""

from __future__ import annotations

import json

import pytest

CHAT = "/v1/chat/completions"
OK_MESSAGES = [{"role": "user", "content": "hi"}]


def _chat(**fields) -> bytes:
    return json.dumps({"model": "tiny-llama", "messages": OK_MESSAGES, **fields}).encode()


CASES = [
    ("malformed JSON", CHAT, b'{"model": "tiny-llama", "messages": [', 400, "not valid JSON"),
    ("not an object", CHAT, b"[1, 2]", 400, "JSON object"),
    ("invalid UTF-8", CHAT, b'{"model": "tiny-llama\xff\xfe"}', 400, "UTF-8"),
    (
        "unknown model",
        CHAT,
        json.dumps({"model": "nope", "messages": OK_MESSAGES}).encode(),
        404,
        "not loaded",
    ),
    (
        "model of wrong type",
        CHAT,
        json.dumps({"model": 5, "messages": OK_MESSAGES}).encode(),
        400,
        "model",
    ),
    ("messages of wrong type", CHAT, _chat(messages="hi"), 400, "messages"),
    ("empty messages", CHAT, _chat(messages=[]), 400, "messages"),
    ("bad role", CHAT, _chat(messages=[{"role": "wizard", "content": "x"}]), 400, "role"),
    (
        "image part",
        CHAT,
        _chat(
            messages=[
                {
                    "role": "user",
                    "content": [{"type": "image_url", "image_url": {"url": "http://x/y.png"}}],
                }
            ]
        ),
        400,
        "text",
    ),
    ("temperature as string", CHAT, _chat(temperature="hot"), 400, "temperature"),
    ("negative max_tokens", CHAT, _chat(max_tokens=-1), 400, "max_tokens"),
    ("huge max_tokens", CHAT, _chat(max_tokens=10**9), 400, "maximum context length"),
    ("top_p out of range", CHAT, _chat(top_p=2.5), 400, "top_p"),
    ("n too large", CHAT, _chat(n=1000), 400, "n"),
    ("stop of wrong type", CHAT, _chat(stop=[1, 2]), 400, "stop"),
    (
        "unknown tool choice",
        CHAT,
        _chat(tool_choice={"type": "function", "function": {"name": "nope"}}),
        400,
        "tool",
    ),
    (
        "prompt beyond context",
        "/v1/completions",
        json.dumps({"model": "tiny-llama", "prompt": "hello " * 5000}).encode(),
        400,
        "maximum context length",
    ),
    (
        "token id outside vocab",
        "/v1/completions",
        json.dumps({"model": "tiny-llama", "prompt": [10**8]}).encode(),
        400,
        "vocabulary",
    ),
    ("body over limit", CHAT, _chat(pad="x" * (9 * 1024 * 1024)), 413, "too large"),
    ("unknown route", "/v1/nothing", b"{}", 404, "route"),
    ("load without id", "/models/load", b"{}", 400, "model_id"),
    ("load unknown model", "/models/load", b'{"model_id": "no/such-model"}', 404, "not found"),
    ("unload unknown model", "/models/unload", b'{"model_id": "no/such-model"}', 404, "not loaded"),
]


@pytest.mark.parametrize(
    ("path", "raw", "status", "needle"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_bad_request_gets_an_openai_error(shared_neuron, path, raw, status, needle):
    got, body, _ = shared_neuron.post(path, raw)
    assert got == status, body
    error = body["error"]
    assert needle.lower() in error["message"].lower(), error
    assert isinstance(error["type"], str) and error["type"]


def test_daemon_still_serves_after_bad_input(shared_neuron):
    status, body, _ = shared_neuron.post(
        CHAT, {"model": "tiny-llama", "messages": OK_MESSAGES, "max_tokens": 2}
    )
    assert status == 200 and body["choices"][0]["message"]["content"] is not None
    info = shared_neuron.model("tiny-llama")
    assert info["status"] == "ready" and info["running"] == 0

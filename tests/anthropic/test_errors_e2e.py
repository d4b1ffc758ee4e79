"""Every way `/v1/messages` can fail reaches the client as Anthropic's error envelope."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path

import anthropic
import pytest

from tests.anthropic.bad_requests import BAD_REQUESTS
from tests.support.anthropic_stack import LONG_MODEL, Stack, start_stack
from tests.support.procs import Proc

pytestmark = pytest.mark.slow


def _assert_envelope(response, status: int, kind: str, fragment: str) -> None:
    assert response.status == status, response.text
    body = response.json()
    assert body["type"] == "error" and body["error"]["type"] == kind, body
    assert fragment in body["error"]["message"], body


@pytest.mark.parametrize(("name", "body", "status", "fragment"), BAD_REQUESTS,
                         ids=[b[0] for b in BAD_REQUESTS])  # fmt: skip
def test_bad_request_table(stack: Stack, name: str, body: dict, status: int, fragment: str) -> None:
    if "model" in body:
        body = {**body, "model": "scripted-text"}
    _assert_envelope(stack.post("/v1/messages", body), status, "invalid_request_error", fragment)


@pytest.mark.parametrize(
    ("payload", "status", "kind", "fragment"),
    [
        (b"{not json", 400, "invalid_request_error", "not valid JSON"),
        (b"[1, 2]", 400, "invalid_request_error", "JSON object"),
        (b'{"model": "no-such-model", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]}',
         404, "not_found_error", "no-such-model"),
    ],
)  # fmt: skip
def test_unreadable_body_and_unknown_model(stack: Stack, payload, status, kind, fragment) -> None:
    _assert_envelope(stack.post("/v1/messages", payload), status, kind, fragment)


def test_count_tokens_errors_are_anthropic_shaped(stack: Stack) -> None:
    body = {"model": "scripted-text", "messages": [{"role": "assistant", "content": "x"}]}
    _assert_envelope(
        stack.post("/v1/messages/count_tokens", body), 400, "invalid_request_error", "first message"
    )


def test_sdk_raises_typed_errors(anthropic_client) -> None:
    with pytest.raises(anthropic.BadRequestError) as bad:
        anthropic_client.messages.create(
            model="scripted-text", max_tokens=5,
            messages=[{"role": "user", "content": [{"type": "image", "source": {
                "type": "url", "url": "https://example.com/cat.png"}}]}],
        )  # fmt: skip
    assert "messages.0.content.0: image" in bad.value.message
    with pytest.raises(anthropic.NotFoundError):
        anthropic_client.messages.create(
            model="missing", max_tokens=5, messages=[{"role": "user", "content": "x"}]
        )


@pytest.fixture
def doomed(anthropic_models: Path, tmp_path: Path) -> Iterator[tuple[Proc, Proc]]:
    """A neuron of its own (to be killed) behind a gateway of its own."""
    stack = start_stack(tmp_path, anthropic_models, (LONG_MODEL,))
    yield stack.neuron, stack.gateway
    stack.neuron.stop()
    assert stack.gateway.stop() == 0, stack.gateway.tail()


def test_upstream_death_mid_stream_is_an_error_event(doomed: tuple[Proc, Proc]) -> None:
    neuron, gateway = doomed
    seen: list[str] = []
    with anthropic.Anthropic(base_url=gateway.url, api_key="unused", max_retries=0) as client:
        stream = client.messages.stream(
            model=LONG_MODEL,
            max_tokens=2000,
            messages=[{"role": "user", "content": "Tell me a very long story."}],
        )
        with pytest.raises(anthropic.APIStatusError) as failure, stream as events:
            for event in events:
                seen.append(event.type)
                if event.type == "text" and neuron.popen.poll() is None:
                    neuron.signal(signal.SIGKILL)
    assert "content_block_start" in seen and "message_stop" not in seen
    body = failure.value.body
    assert body["type"] == "error" and body["error"]["type"] == "api_error", body

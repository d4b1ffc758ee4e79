"""The neuron's side of reasoning and context caps, through the OpenAI dialect (relayed as is):
`reasoning_content`, `chat_template_kwargs`, `thinking_budget`, `reasoning_effort`,
`truncate_max_tokens`."""

from __future__ import annotations

import openai
import pytest

from tests.support.anthropic_stack import ANSWER, REASONING, THINK_MODEL, Stack

pytestmark = pytest.mark.slow
ASK = [{"role": "user", "content": "Name three colours."}]


def test_reasoning_comes_back_apart_whole_and_streamed(openai_client) -> None:
    whole = openai_client.chat.completions.create(
        model=THINK_MODEL, messages=ASK, max_tokens=256, reasoning_effort="low"
    )
    message = whole.model_dump()["choices"][0]["message"]
    assert message["reasoning_content"].strip() == REASONING and message["content"] == ANSWER
    chunks = openai_client.chat.completions.create(
        model=THINK_MODEL, messages=ASK, max_tokens=256, stream=True
    )
    deltas = [c.model_dump()["choices"][0]["delta"] for c in chunks if c.choices]
    order = [k for d in deltas for k in ("reasoning_content", "content") if d.get(k)]
    assert order == sorted(order, key=lambda k: k == "content"), "reasoning before content"
    assert "".join(d.get("reasoning_content") or "" for d in deltas) == message["reasoning_content"]
    assert "".join(d.get("content") or "" for d in deltas) == ANSWER


def test_template_switch_and_budget(openai_client) -> None:
    off = openai_client.chat.completions.create(
        model=THINK_MODEL, messages=ASK, max_tokens=256,
        extra_body={"chat_template_kwargs": {"enable_thinking": False}},
    )  # fmt: skip
    assert off.model_dump()["choices"][0]["message"]["reasoning_content"] is None
    assert off.choices[0].message.content == ANSWER
    cut = openai_client.chat.completions.create(
        model=THINK_MODEL, messages=ASK, max_tokens=256, extra_body={"thinking_budget": 2}
    )
    reasoning = cut.model_dump()["choices"][0]["message"]["reasoning_content"]
    assert REASONING.startswith(reasoning.strip()) and len(reasoning) < len(REASONING) / 2
    with pytest.raises(openai.BadRequestError, match="thinking_budget"):
        openai_client.chat.completions.create(
            model=THINK_MODEL, messages=ASK, extra_body={"thinking_budget": 0}
        )
    with pytest.raises(openai.BadRequestError, match="reasoning_effort"):
        openai_client.chat.completions.create(
            model=THINK_MODEL, messages=ASK, extra_body={"reasoning_effort": "extreme"}
        )


def test_truncate_max_tokens_caps_at_the_context(stack: Stack) -> None:
    context = 4096  # the scripted models' positions
    # A prompt that leaves ~150 tokens; past its script the model goes on (EOS ignored).
    near = [{"role": "user", "content": "word " * 3900}]
    body = {"model": "scripted-text", "messages": near, "max_tokens": 100_000, "ignore_eos": True}
    refused = stack.post("/v1/chat/completions", body)  # without the cap
    assert refused.status == 400, refused.text
    assert "maximum context length is 4096 tokens" in refused.json()["error"]["message"]
    capped = stack.post("/v1/chat/completions", {**body, "truncate_max_tokens": True}).json()
    choice = capped["choices"][0]
    assert (choice["finish_reason"], choice["stop_reason"]) == ("length", "context_window")
    assert capped["usage"]["prompt_tokens"] + capped["usage"]["completion_tokens"] == context
    too_long = {"model": "scripted-text", "truncate_max_tokens": True, "max_tokens": 10,
                "messages": [{"role": "user", "content": "word " * 5000}]}  # fmt: skip
    refused = stack.post("/v1/chat/completions", too_long)
    error = refused.json()["error"]
    assert refused.status == 400 and error["code"] == "context_length_exceeded"
    assert "maximum context length is 4096 tokens; the request has" in error["message"]

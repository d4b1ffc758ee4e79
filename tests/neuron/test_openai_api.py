"""The OpenAI dialect through the official SDK against a real neuron process."""

from __future__ import annotations

import re

import openai
import pytest

from neuron.demo import DEMO_MODEL_ID, demo_gguf_path
from neuron.text.chat_template import ChatTemplate
from neuron.text.tokenizer import Tokenizer
from tests.support.http import http

MESSAGES = [
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": "Name a colour."},
]


@pytest.fixture(scope="module")
def tokenizers(neuron_models):
    import gguf

    tiny = Tokenizer.from_hf_folder(neuron_models / "tiny-llama")
    demo = Tokenizer.from_gguf(gguf.GGUFReader(str(demo_gguf_path())))
    return {"tiny-llama": tiny, DEMO_MODEL_ID: demo}


def _chat_prompt_len(tok: Tokenizer, messages) -> int:
    text = ChatTemplate(tok.chat_template, tok.bos_token, tok.eos_token).render(messages)
    return len(tok.encode(text))


@pytest.mark.parametrize("model", ["tiny-llama", DEMO_MODEL_ID])
def test_chat_usage_matches_tokenizer(client, tokenizers, model):
    reply = client.chat.completions.create(
        model=model, messages=MESSAGES, max_tokens=5, temperature=0
    )
    tok = tokenizers[model]
    choice = reply.choices[0]
    assert reply.object == "chat.completion" and reply.model == model
    assert choice.message.role == "assistant" and choice.finish_reason in ("length", "stop")
    assert reply.usage.prompt_tokens == _chat_prompt_len(tok, MESSAGES)
    # The text re-encodes to at most the tokens generated (EOS is not text).
    assert len(tok.encode(choice.message.content, add_bos=False)) <= reply.usage.completion_tokens
    assert reply.usage.completion_tokens <= 5
    assert reply.usage.total_tokens == reply.usage.prompt_tokens + reply.usage.completion_tokens


@pytest.mark.parametrize("model", ["tiny-llama", DEMO_MODEL_ID])
def test_streaming_equals_non_streaming(client, model):
    kwargs = dict(model=model, messages=MESSAGES, max_tokens=6, temperature=0)
    whole = client.chat.completions.create(**kwargs)
    chunks = list(
        client.chat.completions.create(
            **kwargs, stream=True, stream_options={"include_usage": True}
        )
    )
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole.choices[0].message.content
    finals = [
        c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason
    ]
    assert finals == [whole.choices[0].finish_reason]
    assert chunks[-1].choices == [] and chunks[-1].usage == whole.usage


def test_legacy_completions(client, tokenizers):
    prompt = "The capital of France is"
    reply = client.completions.create(
        model="tiny-llama", prompt=prompt, max_tokens=4, temperature=0
    )
    assert reply.object == "text_completion"
    assert reply.usage.prompt_tokens == len(tokenizers["tiny-llama"].encode(prompt))
    stream = client.completions.create(
        model="tiny-llama", prompt=prompt, max_tokens=4, temperature=0, stream=True
    )
    assert "".join(c.choices[0].text for c in stream) == reply.choices[0].text
    echoed = client.completions.create(
        model="tiny-llama", prompt=prompt, max_tokens=4, temperature=0, echo=True
    )
    assert echoed.choices[0].text == prompt + reply.choices[0].text


def test_seed_reproduces_sampling(client):
    def sample(seed: int) -> str:
        reply = client.chat.completions.create(
            model="tiny-llama", messages=MESSAGES, max_tokens=8, temperature=1.0, seed=seed
        )
        return reply.choices[0].message.content

    first = sample(1234)
    assert sample(1234) == first
    assert sample(99) != first


def test_stop_string_cuts_the_text(client):
    base = (
        client.completions.create(
            model="tiny-llama", prompt="Once upon", max_tokens=12, temperature=0
        )
        .choices[0]
        .text
    )
    stop = base[len(base) // 2 : len(base) // 2 + 3]
    assert stop.strip(), base
    reply = client.completions.create(
        model="tiny-llama",
        prompt="Once upon",
        max_tokens=12,
        temperature=0,
        stop=[stop, "\u2603never"],
    )
    assert reply.choices[0].text == base[: base.index(stop)]
    assert reply.choices[0].finish_reason == "stop"
    assert reply.choices[0].model_extra["stop_reason"] == stop


def test_n_choices(client):
    reply = client.chat.completions.create(
        model="tiny-llama", messages=MESSAGES, max_tokens=6, n=2, temperature=1.0, seed=5
    )
    assert [c.index for c in reply.choices] == [0, 1]
    assert reply.choices[0].message.content != reply.choices[1].message.content
    lengths = [len(c.message.content) for c in reply.choices]
    assert reply.usage.completion_tokens <= 12 and all(lengths)
    streamed = client.chat.completions.create(
        model="tiny-llama",
        messages=MESSAGES,
        max_tokens=6,
        n=2,
        temperature=1.0,
        seed=5,
        stream=True,
    )
    texts = ["", ""]
    for chunk in streamed:
        for choice in chunk.choices:
            texts[choice.index] += choice.delta.content or ""
    assert texts == [c.message.content for c in reply.choices]


def test_logprobs(client):
    reply = client.chat.completions.create(
        model="tiny-llama",
        messages=MESSAGES,
        max_tokens=4,
        temperature=0,
        logprobs=True,
        top_logprobs=3,
    )
    content = reply.choices[0].logprobs.content
    assert len(content) == reply.usage.completion_tokens
    for item in content:
        assert len(item.top_logprobs) == 3
        # Greedy picks the most likely token, so it heads its own top list.
        assert item.logprob == pytest.approx(item.top_logprobs[0].logprob, abs=1e-4)


def test_tokenize_counts_the_rendered_prompt(shared_neuron, tokenizers):
    tok = tokenizers["tiny-llama"]
    status, body, _ = shared_neuron.post("/tokenize", {"model": "tiny-llama", "messages": MESSAGES})
    assert status == 200 and body["count"] == _chat_prompt_len(tok, MESSAGES)
    _, body, _ = shared_neuron.post("/tokenize", {"model": "tiny-llama", "prompt": "a b c"})
    assert body["count"] == len(tok.encode("a b c"))
    tools = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]
    _, body, _ = shared_neuron.post(
        "/tokenize", {"model": "tiny-llama", "messages": MESSAGES, "tools": tools}
    )
    assert body["count"] > _chat_prompt_len(tok, MESSAGES)


def test_response_format_is_refused_clearly(client):
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(
            model="tiny-llama", messages=MESSAGES, response_format={"type": "json_object"}
        )
    assert "response_format" in info.value.message


def test_models_discovery_and_metrics(client, shared_neuron):
    assert {m.id for m in client.models.list()} >= {"tiny-llama", DEMO_MODEL_ID}
    facts = shared_neuron.get_json("/discovery")
    assert facts["hostname"] and facts["python"] and facts["torch"]
    assert [d["id"] for d in facts["devices"] if d["kind"] == "cpu"] == ["cpu-0"]
    client.chat.completions.create(model="tiny-llama", messages=MESSAGES, max_tokens=3)
    text = http("GET", shared_neuron.url + "/metrics").text
    completion = re.search(
        r'neuron_tokens_total\{kind="completion",model="tiny-llama"\} (\S+)', text
    )
    assert completion and float(completion.group(1)) >= 3
    ttft = re.search(r'neuron_time_to_first_token_seconds_count\{model="tiny-llama"\} (\S+)', text)
    assert ttft and float(ttft.group(1)) >= 1
    assert 'neuron_kv_cache_usage_ratio{model="tiny-llama"}' in text
    assert 'neuron_device_memory_total_bytes{device="cpu-0"}' in text


def test_continuous_usage_stats_put_usage_in_every_chunk(client: openai.OpenAI) -> None:
    """vLLM's extension: the first chunk already tells the prompt's token count."""
    chunks = list(
        client.chat.completions.create(
            model="tiny-llama",
            messages=[{"role": "user", "content": "Count with me"}],
            max_tokens=6,
            temperature=0,
            stream=True,
            stream_options={"include_usage": True, "continuous_usage_stats": True},
        )
    )
    final = chunks[-1].usage
    assert all(c.usage is not None for c in chunks)
    assert {c.usage.prompt_tokens for c in chunks} == {final.prompt_tokens}
    completions = [c.usage.completion_tokens for c in chunks]
    assert completions == sorted(completions) and completions[-1] == final.completion_tokens == 6

"""A real gateway in front of a real neuron serving scripted models, for the Anthropic
end-to-end tests: the scripts, the model names and the handles tests use.

The neuron serves three scripted models (fixed answers: a tool call, a text with
emoji, CJK and a stop word, a reasoning block then an answer) and the demo GGUF (a
real model, for greedy decoding); the gateway knows one more scripted model that
nobody has loaded, so a request for it waits on a cold load.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from neuron.demo import DEMO_MODEL_ID, fetch_demo
from tests.support.daemons import Gateway, Neuron, start_gateway, start_neuron
from tests.support.http import Reply, http
from tests.support.scripted_model import make_scripted_model

TOOL_SCRIPT = (
    "Let me check. <tool_call>\n"
    '{"name": "get_weather", "arguments": {"city": "Zürich", "unit": "°C"}}\n</tool_call>'
)
TEXT_SCRIPT = "Hello 🎉 世界! Ünïcödé fine. STOP and more"
LONG_MODEL = "scripted-long"  # a long answer, for a stream cut off half way
# A thinking model: its template takes enable_thinking (off: an empty think block ends the
# prompt, as Qwen3's does) and renders reasoning sent back; it reasons, then answers.
THINK_MODEL = "scripted-think"
REASONING = "The user asks for colours. Three will do."
ANSWER = "Red, green and blue."
THINK_SCRIPT = f"<think>\n{REASONING}\n</think>\n\n{ANSWER}"
THINK_TEMPLATE = (
    "{%- for message in messages %}"
    "{{- '<|im_start|>' + message.role + '\\n' }}"
    "{%- if message.reasoning_content %}"
    "{{- '<think>\\n' + message.reasoning_content + '\\n</think>\\n\\n' }}"
    "{%- endif %}"
    "{{- (message.content or '') + '<|im_end|>\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}"
    "{%- if enable_thinking is defined and enable_thinking is false %}"
    "{{- '<think>\\n\\n</think>\\n\\n' }}{%- endif %}{%- endif %}"
)
DEFAULT_MODELS = ("scripted-tool", "scripted-text", THINK_MODEL, DEMO_MODEL_ID)
COLD_MODEL = "scripted-cold"
ALIAS = "claude-scripted"

# The tool the scripted tool call names, and a question that asks for it.
WEATHER = {
    "name": "get_weather",
    "description": "Current weather for a city",
    "input_schema": {
        "type": "object",
        "properties": {"city": {"type": "string"}, "unit": {"type": "string"}},
        "required": ["city"],
    },
}
ASK = [{"role": "user", "content": "How is the weather in Zürich?"}]


@dataclass
class Stack:
    neuron: Neuron
    gateway: Gateway

    @property
    def url(self) -> str:
        return self.gateway.url

    def post(self, path: str, body: Any, **headers: str) -> Reply:
        """A raw POST (bytes in, bytes out) for tests that check the wire itself."""
        content = body if isinstance(body, bytes) else json.dumps(body).encode()
        headers = {"content-type": "application/json", **headers}
        return http("POST", self.url + path, content, headers=headers)


def make_models(models_root: Path) -> Path:
    make_scripted_model(models_root, "scripted-tool", TOOL_SCRIPT)
    make_scripted_model(models_root, "scripted-text", TEXT_SCRIPT)
    make_scripted_model(models_root, COLD_MODEL, TEXT_SCRIPT)
    make_scripted_model(models_root, LONG_MODEL, "tick " * 1500)
    no_thinking = [{"when": "<think>\n\n</think>", "script": ANSWER}]
    make_scripted_model(models_root, THINK_MODEL, THINK_SCRIPT, no_thinking, THINK_TEMPLATE)
    fetch_demo(models_root)
    return models_root


def start_stack(workdir: Path, models_dir: Path, defaults: tuple[str, ...]) -> Stack:
    """The scripted neuron (every default model loaded) and a gateway that sees them."""
    neuron = start_neuron(
        workdir, models_dir, defaults, module="tests.support.scripted_model", max_batch_size=8
    )
    try:
        failed = neuron.activation_failures()
        assert not failed, f"default models failed to load: {failed}"
        gateway = start_gateway(
            workdir,
            [neuron],
            [{"id": COLD_MODEL}],
            aliases={ALIAS: "scripted-text"},
            loaded=defaults,
            poller={"interval_seconds": 0.5, "timeout_seconds": 5.0, "unhealthy_after": 3},
            routing={"keepalive_seconds": 0.02, "max_wait_seconds": 120.0},
        )
    except BaseException:
        neuron.stop()
        raise
    return Stack(neuron, gateway)


def whole_prompt(usage: Any) -> int:
    """The prompt's tokens, however the prefix cache split them (Anthropic adds the three);
    `usage` as the SDK's object or as JSON."""
    keys = ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")
    if isinstance(usage, dict):
        return sum(int(usage.get(k) or 0) for k in keys)
    return sum(getattr(usage, k) or 0 for k in keys)

"""The scripted models the Responses end-to-end tests run, and the tools they offer.

Each model's answer changes once the prompt holds a tool result: an agent's first
request gets a tool call, its second the final answer.
"""

from __future__ import annotations

import json


def tool_call(name: str, arguments: dict) -> str:
    """A Hermes `<tool_call>` as the neuron's parser reads it out of the model's text."""
    return f"<tool_call>\n{json.dumps({'name': name, 'arguments': arguments}, ensure_ascii=False)}\n</tool_call>"


TEXT = "Hello 🎉 世界! Ünïcödé fine."
WEATHER_CALL = "Let me check. " + tool_call("get_weather", {"city": "Zürich", "unit": "°C"})
WEATHER_ANSWER = "It is 21 °C in Zürich."
PATCH = "*** Begin Patch\n*** Add File: hello.txt\n+hi\n*** End Patch\n"
CODEX_ANSWER = "The command printed cortex-ok."
# Codex's shell tool (`exec_command`), then the answer once its output is in the prompt.
CODEX_SCRIPT = tool_call("exec_command", {"cmd": "echo cortex-ok"})
# What Codex's function_call_output holds after the command's own header lines.
CODEX_OUTPUT = "Output:\ncortex-ok"
TOOL_RESULT = "<tool_response>"  # how the neuron renders a tool result for SmolLM2
MODELS = {
    "scripted-text": (TEXT, []),
    "scripted-agent": (WEATHER_CALL, [{"when": TOOL_RESULT, "script": WEATHER_ANSWER}]),
    "scripted-patch": (
        tool_call("apply_patch", {"input": PATCH}),
        [{"when": TOOL_RESULT, "script": "Patched."}],
    ),
    "scripted-codex": (CODEX_SCRIPT, [{"when": CODEX_OUTPUT, "script": CODEX_ANSWER}]),
}
CONTEXT = 32768  # Codex's own prompt is ~10k tokens

WEATHER_TOOL = {
    "type": "function",
    "name": "get_weather",
    "description": "Current weather in a city",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}, "unit": {"type": "string"}},
        "required": ["city"],
    },
    "strict": False,
}
PATCH_TOOL = {
    "type": "custom",
    "name": "apply_patch",
    "description": "Edit files.",
    "format": {"type": "grammar", "syntax": "lark", "definition": "start: /.+/s"},
}

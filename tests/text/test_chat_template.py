"""Chat templates render as transformers renders them, inside a sandbox."""

from __future__ import annotations

import json

import pytest

from neuron.text import ChatTemplate, ChatTemplateError, Tokenizer, parse_tool_calls

CONVERSATIONS = [
    [{"role": "user", "content": "Hi!"}],
    [
        {"role": "system", "content": "Be terse."},
        {"role": "user", "content": "2+2?"},
        {"role": "assistant", "content": "4"},
        {"role": "user", "content": "Ünïcödé 😀 and\nnewlines"},
    ],
]

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather in a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}

# A Qwen2.5-style template that handles tools itself (shortened).
NATIVE_TOOLS = """{%- if tools %}<|im_start|>system
{{ messages[0]['content'] if messages[0]['role'] == 'system' else 'You are helpful.' }}
<tools>
{%- for tool in tools %}
{{ tool | tojson }}
{%- endfor %}
</tools><|im_end|>
{% endif %}
{%- for message in messages if message.role != 'system' or not tools %}
<|im_start|>{{ message.role }}
{%- if message.content %}
{{ message.content }}
{%- endif %}
{%- for tc in message.tool_calls or [] %}
<tool_call>
{"name": "{{ tc.function.name }}", "arguments": {{ tc.function.arguments | tojson }}}
</tool_call>
{%- endfor %}<|im_end|>
{% endfor %}
{%- if add_generation_prompt %}<|im_start|>assistant
{% endif %}"""


@pytest.fixture(scope="module")
def smol_template(smollm: Tokenizer) -> ChatTemplate:
    return ChatTemplate(smollm.chat_template, smollm.bos_token, smollm.eos_token)


@pytest.mark.parametrize("messages", CONVERSATIONS)
@pytest.mark.parametrize("generation_prompt", [True, False])
def test_smollm2_template_matches_transformers(
    smol_template: ChatTemplate, hf_smollm, messages, generation_prompt: bool
) -> None:
    expected = hf_smollm.apply_chat_template(
        messages, tokenize=False, add_generation_prompt=generation_prompt
    )
    assert smol_template.render(messages, add_generation_prompt=generation_prompt) == expected


def test_native_tool_template_matches_transformers(hf_smollm) -> None:
    call = {"id": "c1", "type": "function"}
    reference_messages = [
        {"role": "user", "content": "Weather in Paris?"},
        {
            **call,
            "role": "assistant",
            "tool_calls": [
                {**call, "function": {"name": "get_weather", "arguments": {"city": "Paris"}}}
            ],
        },
    ]
    expected = hf_smollm.apply_chat_template(
        reference_messages,
        tools=[WEATHER],
        chat_template=NATIVE_TOOLS,
        tokenize=False,
        add_generation_prompt=True,
    )
    # OpenAI clients send arguments as a JSON string: the template still sees the object.
    ours = json.loads(json.dumps(reference_messages))
    ours[1]["tool_calls"][0]["function"]["arguments"] = '{"city": "Paris"}'
    template = ChatTemplate(NATIVE_TOOLS)
    assert template.native_tools
    assert template.render(ours, tools=[WEATHER]) == expected
    assert "# Tools" not in expected  # the generic prompt stays out of native templates


def test_content_parts_are_flattened(smol_template: ChatTemplate) -> None:
    parts = [
        {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}
    ]
    assert smol_template.render(parts) == smol_template.render([{"role": "user", "content": "ab"}])
    image = [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]
    with pytest.raises(ChatTemplateError, match="image_url"):
        smol_template.render(image)


def test_templates_that_read_parts_get_them() -> None:
    template = ChatTemplate(
        "{% for m in messages %}{% for p in m.content %}[{{ p.type }}:{{ p.text }}]"
        "{% endfor %}{% endfor %}"
    )
    parts = [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]
    assert template.render([{"role": "user", "content": parts}]) == "[text:a][text:b]"
    with pytest.raises(ChatTemplateError, match="only text"):
        template.render([{"role": "user", "content": [{"type": "input_audio"}]}])


def test_tool_prompt_injected_when_template_has_no_tools(smol_template: ChatTemplate) -> None:
    assert not smol_template.native_tools
    text = smol_template.render([{"role": "user", "content": "Weather in Paris?"}], tools=[WEATHER])
    assert text.startswith("<|im_start|>system\n# Tools\n")
    assert json.dumps(WEATHER) in text
    assert '<tool_call>\n{"name": <function-name>, "arguments": <args-json-object>}' in text
    assert text.endswith("<|im_start|>user\nWeather in Paris?<|im_end|>\n<|im_start|>assistant\n")
    # an existing system message keeps its text, the tool prompt follows it
    with_system = smol_template.render(
        [{"role": "system", "content": "Be terse."}, {"role": "user", "content": "?"}],
        tools=[WEATHER],
    )
    assert with_system.startswith("<|im_start|>system\nBe terse.\n\n# Tools\n")
    none = smol_template.render(
        [{"role": "user", "content": "?"}], tools=[WEATHER], tool_choice="none"
    )
    assert none == smol_template.render([{"role": "user", "content": "?"}])
    forced = smol_template.render(
        [{"role": "user", "content": "?"}],
        tools=[WEATHER, {"type": "function", "function": {"name": "other"}}],
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
    )
    assert '"name": "other"' not in forced
    assert "You must call the function get_weather." in forced


def test_tool_history_renders_as_hermes_turns(smol_template: ChatTemplate) -> None:
    messages = [
        {"role": "user", "content": "Weather in Paris and Rome?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": f"call_{c}",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": json.dumps({"city": c})},
                }
                for c in ("Paris", "Rome")
            ],
        },
        {"role": "tool", "tool_call_id": "call_Paris", "content": "18C"},
        {"role": "tool", "tool_call_id": "call_Rome", "content": "24C"},
    ]
    text = smol_template.render(messages, tools=[WEATHER])
    turns = text.split("<|im_start|>")
    assistant = next(t for t in turns if t.startswith("assistant\n<tool_call>"))
    reply = assistant.removeprefix("assistant\n").removesuffix("<|im_end|>\n")
    parsed = parse_tool_calls(reply)
    assert parsed.content == ""
    assert [(c.name, json.loads(c.arguments)) for c in parsed.tool_calls] == [
        ("get_weather", {"city": "Paris"}),
        ("get_weather", {"city": "Rome"}),
    ]
    assert (
        "<|im_start|>user\n<tool_response>\n18C\n</tool_response>\n"
        "<tool_response>\n24C\n</tool_response><|im_end|>\n<|im_start|>assistant\n"
    ) in text


@pytest.mark.parametrize(
    "source",
    [
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "{{ raise_exception.__globals__['json'] }}",
        "{% set _ = messages.append({'role': 'x'}) %}ok",
    ],
)
def test_sandbox_refuses_unsafe_access(source: str) -> None:
    with pytest.raises(ChatTemplateError):
        ChatTemplate(source).render([{"role": "user", "content": "hi"}])


def test_sandbox_hides_internals() -> None:
    """Unsafe attributes read as undefined (empty), as in transformers; a plain
    jinja2 environment would print "<class 'list'>" here."""
    leak = ChatTemplate("[{{ messages.__class__ }}{{ raise_exception.__code__ }}]")
    assert leak.render([{"role": "user", "content": "hi"}]) == "[]"


def test_template_errors_are_clear() -> None:
    with pytest.raises(ChatTemplateError, match="does not compile"):
        ChatTemplate("{% for m in messages %}")
    failing = ChatTemplate("{{ raise_exception('Conversation roles must alternate') }}")
    with pytest.raises(ChatTemplateError, match="Conversation roles must alternate"):
        failing.render([{"role": "user", "content": "hi"}])
    with pytest.raises(ChatTemplateError, match="ZeroDivisionError"):
        ChatTemplate("{{ 1 // 0 }}").render([])
    with pytest.raises(ChatTemplateError, match="list of objects"):
        ChatTemplate("x").render("not a list")  # type: ignore[arg-type]


def test_helpers_and_extra_variables() -> None:
    template = ChatTemplate(
        "{{ bos_token }}{{ messages[0].content | tojson }}|{{ strftime_now('%Y') | length }}"
        "|{{ enable_thinking }}{% generation %}!{% endgeneration %}",
        bos_token="<s>",
    )
    out = template.render([{"role": "user", "content": "é<>&"}], enable_thinking=False)
    assert out == '<s>"é<>&"|4|False!'

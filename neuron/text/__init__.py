"""Text around the decoder: tokenizer, chat template, streaming decode, stops, tool calls."""

from neuron.text.chat_template import ChatTemplate, ChatTemplateError
from neuron.text.detokenizer import StreamDetokenizer
from neuron.text.stop import StopMatcher
from neuron.text.tokenizer import Tokenizer
from neuron.text.tool_calls import (
    ContentEvent,
    ParsedOutput,
    ToolCall,
    ToolCallEvent,
    ToolCallStreamParser,
    parse_tool_calls,
)

__all__ = [
    "ChatTemplate",
    "ChatTemplateError",
    "ContentEvent",
    "ParsedOutput",
    "StopMatcher",
    "StreamDetokenizer",
    "Tokenizer",
    "ToolCall",
    "ToolCallEvent",
    "ToolCallStreamParser",
    "parse_tool_calls",
]

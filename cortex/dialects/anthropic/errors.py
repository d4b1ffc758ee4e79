"""Neuron errors reworded the way Anthropic clients read them.

Claude Code compacts its conversation when a 400 says `prompt is too long: N tokens >
M maximum` (its own regular expression reads the two numbers), so the neuron's
context-length refusal is given exactly that wording.
"""

from __future__ import annotations

import dataclasses
import re

from cortex.common.wire import ApiError

# The neuron's wording: "…maximum context length is M tokens; the request has N prompt tokens…"
_CONTEXT = re.compile(
    r"maximum context length is (\d+) tokens; the request has (\d+) prompt tokens"
)


def anthropic_error(err: ApiError) -> ApiError:
    """`err` as an Anthropic client expects it (a copy; unchanged when nothing applies)."""
    found = _CONTEXT.search(err.message) if err.code == "context_length_exceeded" else None
    if found is None:
        return err
    maximum, prompt = found.groups()
    return dataclasses.replace(
        err, message=f"prompt is too long: {prompt} tokens > {maximum} maximum"
    )

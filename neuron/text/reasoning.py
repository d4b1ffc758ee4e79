"""Reasoning (`<think>…</think>`) split out of model output, whole or streamed.

Thinking models write their reasoning between `<think>` and `</think>` before the
answer; some templates open the block in the prompt already (the output then starts
inside it). Clients want the two apart: OpenAI-style servers return the reasoning as
`reasoning_content` beside `content`. A `<think>` counts only where reasoning can
begin — at the very start of the output, whitespace aside — so a model that merely
mentions the tag in its answer keeps it as text.

`ThinkSplitter` works on text deltas (a tag may arrive split across tokens);
`ThinkBudget` counts reasoning tokens on the engine's side and says when to close the
block, so a `thinking_budget` bounds the reasoning and the answer still follows.
"""

from __future__ import annotations

from dataclasses import dataclass

from neuron.text.stop import partial_suffix_len

THINK_OPEN = "<think>"
THINK_CLOSE = "</think>"
# What the engine appends when the budget is spent: the block closes, the answer begins.
BUDGET_CLOSE = "\n" + THINK_CLOSE + "\n\n"


def opens_in_prompt(prompt: str) -> bool:
    """Whether the rendered prompt leaves a think block open (the output starts inside)."""
    return prompt.rfind(THINK_OPEN) > prompt.rfind(THINK_CLOSE)


@dataclass
class Split:
    """One delta's worth of output: reasoning text and answer text."""

    reasoning: str = ""
    content: str = ""


class ThinkSplitter:
    """Feed output deltas; get back reasoning and content, tags removed."""

    def __init__(self, inside: bool = False) -> None:
        # "start": a think block may still open; "think": inside one; "gap": the blank
        # lines after it (layout, dropped); "answer": the rest.
        self.state = "think" if inside else "start"
        self._held = ""

    def feed(self, text: str) -> Split:
        buffer, self._held = self._held + text, ""
        out = Split()
        while buffer:
            if self.state == "start":
                stripped = buffer.lstrip()
                if stripped.startswith(THINK_OPEN):
                    self.state, buffer = "think", stripped[len(THINK_OPEN) :]
                elif THINK_OPEN.startswith(stripped):
                    self._held = buffer  # whitespace or a part of the tag: undecided
                    break
                else:
                    self.state = "answer"
            elif self.state == "think":
                end = buffer.find(THINK_CLOSE)
                if end < 0:
                    keep = partial_suffix_len(buffer, (THINK_CLOSE,))
                    out.reasoning += buffer[: len(buffer) - keep]
                    self._held = buffer[len(buffer) - keep :]
                    break
                out.reasoning += buffer[:end]
                self.state, buffer = "gap", buffer[end + len(THINK_CLOSE) :]
            elif self.state == "gap":
                buffer = buffer.lstrip("\n")
                self.state = "answer" if buffer else "gap"
            else:
                out.content += buffer
                break
        return out

    def finish(self) -> Split:
        """The held-back tail once generation ended (it never became a tag)."""
        held, self._held = self._held, ""
        return Split(reasoning=held) if self.state == "think" else Split(content=held)


class ThinkBudget:
    """Reasoning tokens counted as the engine produces them; `spent` says when to close."""

    def __init__(self, budget: int, inside: bool) -> None:
        self.budget = budget
        self._splitter = ThinkSplitter(inside)
        self.tokens = 0

    def feed(self, text: str) -> bool:
        """Count one generated token (its text); True when the block must close now."""
        if self._splitter.state == "answer":
            return False
        if self._splitter.state == "think":
            self.tokens += 1
        self._splitter.feed(text)
        return self._splitter.state == "think" and self.tokens >= self.budget

    def closed(self) -> None:
        """The engine appended the closing text: reasoning is over."""
        self._splitter.state = "answer"

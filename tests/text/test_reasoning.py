"""<think> reasoning split from the answer, however the output is cut into deltas."""

from __future__ import annotations

import pytest

from neuron.text.reasoning import ThinkBudget, ThinkSplitter, opens_in_prompt

OUTPUT = "<think>\nweigh it </thi up\n</think>\n\nThe answer <think> is 4."


def _split(text: str, cuts: int, inside: bool = False) -> tuple[str, str]:
    splitter = ThinkSplitter(inside)
    reasoning = content = ""
    size = max(1, len(text) // cuts)
    for start in range(0, len(text), size):
        part = splitter.feed(text[start : start + size])
        reasoning, content = reasoning + part.reasoning, content + part.content
    tail = splitter.finish()
    return reasoning + tail.reasoning, content + tail.content


@pytest.mark.parametrize("cuts", [1, 3, 7, len(OUTPUT)])
def test_any_cut_splits_the_same(cuts: int) -> None:
    # A tag later in the answer is text; a broken closing tag is reasoning text.
    assert _split(OUTPUT, cuts) == ("\nweigh it </thi up\n", "The answer <think> is 4.")


@pytest.mark.parametrize("cuts", [1, 5])
def test_output_without_a_think_block_is_all_answer(cuts: int) -> None:
    assert _split("  <thinking> is a word", cuts) == ("", "  <thinking> is a word")
    assert _split("\n\n", cuts) == ("", "\n\n")


def test_a_block_opened_by_the_prompt() -> None:
    assert opens_in_prompt("<|im_start|>assistant\n<think>\n")
    assert not opens_in_prompt("<|im_start|>assistant\n<think>\n\n</think>\n\n")
    assert not opens_in_prompt("plain")
    assert _split("reasons</think>answer", 3, inside=True) == ("reasons", "answer")


def test_unfinished_reasoning_stays_reasoning() -> None:
    assert _split("<think>still going </th", 2) == ("still going </th", "")


def test_budget_counts_reasoning_tokens_only() -> None:
    budget = ThinkBudget(3, inside=False)
    tokens = ["<think>", "a", "b"]
    assert [budget.feed(t) for t in tokens] == [False, False, False]
    assert budget.feed("c") is True  # the third reasoning token: close now
    budget.closed()
    assert budget.feed("answer") is False
    early = ThinkBudget(5, inside=False)
    assert [early.feed(t) for t in ["<think>", "x", "</think>", "y", "z", "w", "v"]] == [False] * 7
    plain = ThinkBudget(1, inside=False)
    assert [plain.feed(t) for t in ["Hi", "there"]] == [False, False]

"""Stop strings that span deltas are caught; nothing of them reaches the client."""

from __future__ import annotations

import pytest

from neuron.text import StopMatcher, StreamDetokenizer, Tokenizer
from neuron.text.stop import partial_suffix_len


def _run(stops: list[str], deltas: list[str]) -> tuple[str, str | None]:
    matcher = StopMatcher(stops)
    out, matched = [], None
    for delta in deltas:
        safe, matched = matcher.feed(delta)
        out.append(safe)
        if matched:
            break
    else:
        out.append(matcher.flush())
    return "".join(out), matched


CASES = [
    # stops, deltas, expected text, expected stop
    (["</end>"], ["Hello </", "end> tail"], "Hello ", "</end>"),
    (["</end>"], ["Hello <", "/", "e", "nd", ">"], "Hello ", "</end>"),
    (["</end>"], ["a </en", "d but no"], "a </end but no", None),
    (["STOP"], ["STOP"], "", "STOP"),
    (["\n\n"], ["line\n", "\nnext"], "line", "\n\n"),
    (["abc", "bcd"], ["xab", "cd"], "x", "abc"),
    (["abcd", "c"], ["ab", "cd"], "ab", "c"),  # "c" completes first
    (["bc", "abc"], ["xabc"], "x", "abc"),
    (["ab"], ["aab"], "a", "ab"),
    (["ab"], ["a", "a", "a", "b"], "aa", "ab"),
    (["x"], ["no stop here"], "no stop here", None),
    ([], ["anything ", "goes"], "anything goes", None),
    (["", "end"], ["the end"], "the ", "end"),
    (["😀"], ["smile 😀 now"], "smile ", "😀"),
]


@pytest.mark.parametrize(("stops", "deltas", "text", "stop"), CASES)
def test_stop_table(stops, deltas, text, stop) -> None:
    assert _run(stops, deltas) == (text, stop)


@pytest.mark.parametrize(("stops", "deltas", "text", "stop"), CASES)
def test_any_chunking_gives_the_same_result(stops, deltas, text, stop) -> None:
    whole = "".join(deltas)
    for i in range(len(whole) + 1):
        for j in range(i, len(whole) + 1):
            assert _run(stops, [whole[:i], whole[i:j], whole[j:]]) == (text, stop), (i, j)


def test_held_text_is_released_only_when_decided() -> None:
    matcher = StopMatcher(["###"])
    assert matcher.feed("answer #") == ("answer ", None)
    assert matcher.feed("#") == ("", None)
    assert matcher.feed("!") == ("##!", None)
    assert matcher.feed("##") == ("", None)
    assert matcher.flush() == "##"
    assert matcher.flush() == ""


def test_after_a_match_nothing_more_is_emitted() -> None:
    matcher = StopMatcher(["<|user|>"])
    assert matcher.feed("ok<|user|>more") == ("ok", "<|user|>")
    assert matcher.feed("even more") == ("", "<|user|>")
    assert matcher.flush() == ""


def test_stops_across_real_token_boundaries(smollm: Tokenizer) -> None:
    """Deltas from the streaming detokenizer: the stops span several tokens."""
    text = "First answer.\nObservation: 東京 is 🗼 big.\nMore"
    ids = smollm.encode(text)
    for stop, expected in [
        ("\nObservation:", "First answer."),
        ("東京 is", "First answer.\nObservation: "),
        ("🗼 b", "First answer.\nObservation: 東京 is "),
        ("big.\nMo", "First answer.\nObservation: 東京 is 🗼 "),
    ]:
        detok = StreamDetokenizer(smollm)
        deltas = [detok.step(i) for i in ids]
        assert not any(stop in d for d in deltas)  # it really spans deltas
        assert _run([stop], deltas) == (expected, stop)


def test_partial_suffix_len() -> None:
    assert partial_suffix_len("abc", ["cde"]) == 1
    assert partial_suffix_len("abcd", ["bcde", "d"]) == 3
    assert partial_suffix_len("abc", ["abc"]) == 0  # a whole match is not partial
    assert partial_suffix_len("", ["x"]) == 0

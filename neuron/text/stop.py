"""Stop strings over a stream of text deltas.

A stop string may arrive split across tokens ("</" then "end>"), so any tail of the
text that could still grow into one is held back until the next delta decides it.
The caller never sees a stop string or any text after it.
"""

from __future__ import annotations

from collections.abc import Iterable


def partial_suffix_len(text: str, needles: Iterable[str]) -> int:
    """Length of the longest tail of `text` that is a proper prefix of some needle."""
    best = 0
    for needle in needles:
        for k in range(min(len(needle) - 1, len(text)), best, -1):
            if text.endswith(needle[:k]):
                best = k
                break
    return best


def first_completed(text: str, needles: Iterable[str]) -> tuple[int, str] | None:
    """The (index, needle) occurrence that ends first in `text` (the longer on a tie).

    Ending first, not starting first, is what a stream sees complete first, so the
    result does not depend on how the text was cut into deltas."""
    hits = []
    for needle in needles:
        index = text.find(needle)
        if index >= 0:
            hits.append((index + len(needle), index, needle))
    if not hits:
        return None
    _, index, needle = min(hits)
    return index, needle


class StopMatcher:
    """Feed text deltas; get back the text that is safe to emit and the stop that ended it."""

    def __init__(self, stops: Iterable[str] | None) -> None:
        self.stops = tuple(dict.fromkeys(s for s in stops or () if s))
        self.matched: str | None = None
        self._held = ""

    def feed(self, text: str) -> tuple[str, str | None]:
        """(safe text, the stop string if one just completed). After a match the stream is
        over: later deltas yield nothing."""
        if self.matched is not None:
            return "", self.matched
        buffer = self._held + text
        hit = first_completed(buffer, self.stops)
        if hit is not None:
            self._held = ""
            self.matched = hit[1]
            return buffer[: hit[0]], self.matched
        keep = partial_suffix_len(buffer, self.stops)
        self._held = buffer[len(buffer) - keep :]
        return buffer[: len(buffer) - keep], None

    def flush(self) -> str:
        """The held-back tail, at the end of generation (it did not become a stop)."""
        held, self._held = self._held, ""
        return held

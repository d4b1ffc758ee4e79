"""Per-request generation settings, checked once at the door.

The sampling knobs are inherited from `neuron_kernels.sampling.SamplingKnobs` (each one
column of a `SamplingBatch`), so a bad value is rejected here with a message the
API can hand back verbatim instead of surfacing later as a kernel error on the
device thread.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from neuron_kernels.sampling import SamplingKnobs

MAX_LOGPROBS = 20
MAX_STOP_STRINGS = 16
MAX_LOGIT_BIAS = 100.0  # OpenAI's limits on a logit_bias value
MAX_LOGIT_BIAS_ENTRIES = 300


@dataclass
class SamplingParams(SamplingKnobs):
    """The kernel's knobs plus what the engine itself acts on."""

    max_tokens: int = 16
    seed: int | None = None
    stop: list[str] = field(default_factory=list)
    stop_token_ids: list[int] = field(default_factory=list)
    ignore_eos: bool = False
    logprobs: int | None = None  # None: off; 0: the chosen token only; n: top-n as well
    # At most this many reasoning tokens (<think>…</think>); then the engine closes the block.
    thinking_budget: int | None = None
    think_in_prompt: bool = False  # the prompt left a think block open
    logit_bias: dict[int, float] = field(default_factory=dict)  # added to those tokens' logits

    def validate(self, vocab_size: int) -> None:
        """Raise ValueError naming the first offending field and its allowed range."""
        _check_int("max_tokens", self.max_tokens, low=1)
        _check_float("temperature", self.temperature, 0.0, None)
        _check_float("top_p", self.top_p, 0.0, 1.0, low_open=True)
        _check_int("top_k", self.top_k, low=0)
        _check_float("min_p", self.min_p, 0.0, 1.0)
        _check_float("repetition_penalty", self.repetition_penalty, 0.0, None, low_open=True)
        _check_float("presence_penalty", self.presence_penalty, -2.0, 2.0)
        _check_float("frequency_penalty", self.frequency_penalty, -2.0, 2.0)
        if self.seed is not None:
            _check_int("seed", self.seed)
        if self.logprobs is not None:
            _check_int("logprobs", self.logprobs, low=0, high=MAX_LOGPROBS)
        if self.thinking_budget is not None:
            _check_int("thinking_budget", self.thinking_budget, low=1)
        if len(self.stop) > MAX_STOP_STRINGS:
            raise ValueError(f"at most {MAX_STOP_STRINGS} stop strings are allowed")
        for text in self.stop:
            if not isinstance(text, str) or not text:
                raise ValueError(f"stop strings must be non-empty strings, got {text!r}")
        for token_id in self.stop_token_ids:
            _check_int("stop_token_ids", token_id, low=0, high=vocab_size - 1)
        if len(self.logit_bias) > MAX_LOGIT_BIAS_ENTRIES:
            raise ValueError(f"logit_bias may hold at most {MAX_LOGIT_BIAS_ENTRIES} tokens")
        for token_id, bias in self.logit_bias.items():
            _check_int("logit_bias token id", token_id, low=0, high=vocab_size - 1)
            _check_float("logit_bias value", bias, -MAX_LOGIT_BIAS, MAX_LOGIT_BIAS)


def _check_int(name: str, value: object, low: int | None = None, high: int | None = None) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    if (low is not None and value < low) or (high is not None and value > high):
        raise ValueError(f"{name} must be in [{low}, {high}], got {value}")


def _check_float(
    name: str, value: object, low: float, high: float | None, low_open: bool = False
) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    too_low = value <= low if low_open else value < low
    if too_low or (high is not None and value > high):
        left = "(" if low_open else "["
        right = f"{high}]" if high is not None else "inf)"
        raise ValueError(f"{name} must be in {left}{low}, {right}, got {value}")

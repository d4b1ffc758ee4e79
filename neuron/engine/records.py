"""What goes into and comes out of the engine: plain data, no tensors.

These cross from the device worker thread to the asyncio side, so they hold
only Python values (and a compiled grammar, which is immutable and shared).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from neuron.engine.sampling_params import SamplingParams
from neuron.models.pooling import PoolRequest


@dataclass
class EngineRequest:
    request_id: str
    prompt_ids: list[int]
    params: SamplingParams
    grammar: Any = None  # an xgrammar CompiledGrammar the reply must follow, or None
    grammar_prefix: str = ""  # reply text already in the prompt, read by the matcher first
    pool: PoolRequest | None = None  # prefill only: pool the hidden states, sample nothing


@dataclass
class TokenLogprob:
    token_id: int
    token: str
    logprob: float
    top: list[tuple[int, str, float]]  # (token id, token text, logprob), best first


@dataclass
class RequestOutput:
    """One increment of a request: everything produced since its previous output."""

    request_id: str
    text: str  # new text; stop strings are held back until ruled out, and removed
    token_ids: list[int]
    finished: bool
    finish_reason: str | None  # "stop" | "length" | "abort"
    stop_reason: str | int | None  # the matched stop string or stop token id
    prompt_tokens: int
    cached_tokens: int  # prompt tokens served from the prefix cache
    completion_tokens: int
    logprobs: list[TokenLogprob] | None
    vector: list[float] | None = None  # a pooled request's embedding (or scored logits)


@dataclass
class EngineStats:
    running: int
    waiting: int
    free_blocks: int
    total_blocks: int
    block_size: int
    prefix_cache: bool
    cached_blocks: int  # blocks holding a reusable prefix, in use or not
    prefix_queried_tokens: int  # prompt tokens looked up in the prefix cache (cumulative)
    prefix_hit_tokens: int  # of those, found there (cumulative)
    # The CPU decode step's compiled path (cpu_compile.py): "off", "compiling", "active"
    # or "failed".
    compiled_decode: str = "off"

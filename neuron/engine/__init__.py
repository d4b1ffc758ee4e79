"""Continuous-batching generation over a paged KV cache (device worker thread only)."""

from neuron.engine.engine import Engine
from neuron.engine.records import EngineRequest, EngineStats, RequestOutput, TokenLogprob
from neuron.engine.sampling_params import SamplingParams

__all__ = [
    "Engine",
    "EngineRequest",
    "EngineStats",
    "RequestOutput",
    "SamplingParams",
    "TokenLogprob",
]

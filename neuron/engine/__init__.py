"""Continuous-batching generation over a paged KV cache (device worker thread only)."""

from neuron.engine.engine import Engine
from neuron.engine.outputs import EngineStats, GenerationRequest, RequestOutput, TokenLogprob
from neuron.engine.sampling_params import SamplingParams

__all__ = [
    "Engine",
    "EngineStats",
    "GenerationRequest",
    "RequestOutput",
    "SamplingParams",
    "TokenLogprob",
]

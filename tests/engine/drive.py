"""Helpers that drive a real Engine to the end and add up its outputs."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from neuron.engine import Engine, EngineRequest, RequestOutput, SamplingParams
from neuron.models.loader import LoadedModel


@dataclass
class Result:
    """Everything the outputs of one request added up to."""

    text: str = ""
    token_ids: list[int] = field(default_factory=list)
    outputs: list[RequestOutput] = field(default_factory=list)

    @property
    def last(self) -> RequestOutput:
        return self.outputs[-1]


def collect(outputs: Iterable[RequestOutput], results: dict[str, Result]) -> None:
    for out in outputs:
        result = results.setdefault(out.request_id, Result())
        assert not (result.outputs and result.last.finished), "output after the end"
        result.text += out.text
        result.token_ids += out.token_ids
        result.outputs.append(out)


def run_to_end(engine: Engine, max_steps: int = 10_000) -> dict[str, Result]:
    results: dict[str, Result] = {}
    for _ in range(max_steps):
        if not engine.has_work():
            return results
        collect(engine.step(), results)
    raise AssertionError(f"engine still busy after {max_steps} steps")


def greedy(max_tokens: int = 8, **kwargs) -> SamplingParams:
    return SamplingParams(max_tokens=max_tokens, temperature=0.0, **kwargs)


def prompt(length: int, start: int = 100) -> list[int]:
    """A deterministic prompt of `length` ordinary token ids."""
    return [start + (7 * i) % 997 for i in range(length)]


def one_at_a_time(
    loaded: LoadedModel, requests: list[EngineRequest], **engine_kwargs
) -> dict[str, Result]:
    engine = Engine(loaded, **{"num_blocks": 256, "block_size": 8, **engine_kwargs})
    results: dict[str, Result] = {}
    for request in requests:
        engine.add(request)
        results.update(run_to_end(engine))
    return results

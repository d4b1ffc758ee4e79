"""A neuron started again on the same `cache_dir` finds its compiled CPU decode step
there (neuron/engine/cpu_compile.py) instead of compiling it again."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.support.daemons import Neuron, start_neuron
from tests.support.http import wait_until

pytestmark = pytest.mark.slow


def _state(neuron: Neuron) -> str | None:
    return neuron.model("tiny-llama").get("compiled_decode")


def _start_and_compile(work: Path, models: Path, cache: Path, name: str) -> tuple[int, int]:
    """(graphs found in the cache, graphs compiled) by one neuron's start."""
    neuron = start_neuron(work, models, ["tiny-llama"], name=name, timeout=600,
                          env={"NEURON_CPU_COMPILE": "true"}, cache_dir=cache)  # fmt: skip
    try:
        wait_until(lambda: _state(neuron) in ("active", "failed"), 1800, "the compile's end")
        assert _state(neuron) == "active", neuron.tail()
        found = re.search(
            r"compile over: (\d+) graphs from the cache, (\d+) compiled", neuron.tail()
        )
        assert found, neuron.tail()
        return int(found[1]), int(found[2])
    finally:
        assert neuron.stop() == 0, neuron.tail()


def test_a_second_start_finds_the_compiled_step(tiny_llama: Path, tmp_path: Path) -> None:
    models, cache = tiny_llama.parent, tmp_path / "cache"
    assert _start_and_compile(tmp_path, models, cache, "first") == (0, 2)
    assert (cache / "inductor").is_dir()
    assert _start_and_compile(tmp_path, models, cache, "second") == (2, 0)

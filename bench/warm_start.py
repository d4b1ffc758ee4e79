"""A neuron's start with a cold and a warm compile cache, and requests served while the
CPU decode step compiles (SmolLM2 demo GGUF, over HTTP).

Each run starts `neuron serve` three times, each a fresh process:

1. cold: an empty `cache_dir`. Times from process start to the model's load, to the
   end of the compile (`/models` says `compiled_decode: active`), and to the first
   token of a 512-token prompt sent then. Then an agent conversation (bench/
   agent_turns.py: a ~2.1k-token system prompt, each turn ~190 tokens more) turn by
   turn: the TTFT of turns 2-4, their prompts all but the new part in the prefix
   cache, is the "after the compile" side.
2. warm: the same `cache_dir` again; the same three times.
3. during: an empty `cache_dir`; the same conversation (another salt, so no cached
   block is shared) sent as soon as the model has loaded: the TTFT of turns 2-4 while
   the compile runs (a turn that ended after the compile is reported, not counted).

Prints medians over the runs, the cold start beside the warm one and the turns during
the compile beside those after it (target: at most 1.5x). Asserts nothing.

    python -m bench.warm_start [--runs 3]
"""

from __future__ import annotations

import json
import statistics
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from bench.agent_turns import conversation
from bench.cli import runs_main
from neuron.demo import DEMO_MODEL_ID, demo_gguf_path, fetch_demo
from neuron.models.gguf_io import open_gguf
from neuron.text.chat_template import ChatTemplate
from neuron.text.tokenizer import Tokenizer
from tests.support.procs import Proc, free_port

LONG_PROMPT = 512
MEASURED_TURNS = (1, 2, 3)  # turns 2-4 (0-based): a cached prefix, a new tail


@dataclass
class Start:
    """Seconds from process start to each milestone of one neuron start."""

    loaded: float = 0.0
    compiled: float = 0.0
    first_token: float = 0.0
    turns: list[float] = field(default_factory=list)  # TTFT of the measured turns
    late: int = 0  # turns of a "during" start that ended after the compile


def _post(url: str, body: dict) -> None:
    request = urllib.request.Request(
        url, json.dumps(body).encode(), {"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=600) as response:
        response.read()


def _state(url: str) -> str | None:
    with urllib.request.urlopen(url + "/models", timeout=30) as response:
        loaded = json.load(response)["loaded"]
    return loaded[0].get("compiled_decode") if loaded else None


def _first_token(url: str, prompt: list[int]) -> float:
    """Seconds to a one-token completion of `prompt` (its prefill and one sample)."""
    began = time.perf_counter()
    body = {"model": DEMO_MODEL_ID, "prompt": prompt, "max_tokens": 1, "temperature": 0}
    _post(url + "/v1/completions", body)
    return time.perf_counter() - began


class _Neuron:
    """One `neuron serve` of the demo model on `cache_dir`, timed from its start."""

    def __init__(self, work: Path, cache_dir: Path, name: str) -> None:
        port = free_port()
        config = work / f"{name}.toml"
        config.write_text(
            f'port = {port}\nlisten = "127.0.0.1"\nmodels_dir = "models"\n'
            f'cache_dir = "{cache_dir}"\ncpu_compile = true\n'
            f"[[default_models]]\nmodel_id = {json.dumps(DEMO_MODEL_ID)}\n"
        )
        self.began = time.perf_counter()
        self.proc = Proc(
            ["neuron.cli", "serve", "-c", str(config)],
            work / f"{name}.log",
            f"http://127.0.0.1:{port}",
            env={"NEURON_CPU_COMPILE": "true"},
        ).start()

    def since(self) -> float:
        return time.perf_counter() - self.began

    def loaded(self) -> float:
        self.proc.wait_http("/health", timeout=600, ready='"status": "ready"')
        return self.since()

    def compiled(self) -> float:
        while (state := _state(self.proc.url)) == "compiling":
            time.sleep(0.2)
        if state != "active":
            raise RuntimeError(f"the compile ended {state}: {self.proc.tail()}")
        return self.since()


def _turns(url: str, prompts: list[list[int]]) -> tuple[list[float], list[str]]:
    """TTFT of the measured turns, and the compile's state after each."""
    times, states = [], []
    for turn, prompt in enumerate(prompts[: max(MEASURED_TURNS) + 1]):
        took = _first_token(url, prompt)
        if turn in MEASURED_TURNS:
            times.append(took)
            states.append(_state(url) or "")
    return times, states


def _start(
    work: Path, cache: Path, name: str, long_ids: list[int], turns: list[list[int]] | None
) -> Start:
    """A start that waits for the compile, sends the 512-token prompt, then `turns`."""
    neuron, out = _Neuron(work, cache, name), Start()
    try:
        out.loaded = neuron.loaded()
        out.compiled = neuron.compiled()
        _first_token(neuron.proc.url, long_ids)
        out.first_token = neuron.since()
        if turns is not None:
            out.turns, _ = _turns(neuron.proc.url, turns)
    finally:
        neuron.proc.stop()
    return out


def _during(work: Path, cache: Path, name: str, turns: list[list[int]]) -> Start:
    neuron, out = _Neuron(work, cache, name), Start()
    try:
        out.loaded = neuron.loaded()
        times, states = _turns(neuron.proc.url, turns)
        out.turns = [t for t, s in zip(times, states, strict=True) if s == "compiling"]
        out.late = len(times) - len(out.turns)
    finally:
        neuron.proc.stop()
    return out


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def run(runs: int) -> None:
    path = demo_gguf_path()
    tokenizer = Tokenizer.from_gguf(open_gguf(path))
    template = ChatTemplate(tokenizer.chat_template, tokenizer.bos_token, None)
    words = tokenizer.encode(" ".join(f"word{i}" for i in range(LONG_PROMPT)), add_bos=False)
    long_ids = words[:LONG_PROMPT]
    cold, warm, during = [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        fetch_demo(work / "models")
        for r in range(runs):
            cache = work / f"cache-{r}"
            after_turns = conversation(template, tokenizer, salt=f"[after {r}] ")
            cold.append(_start(work, cache, f"cold-{r}", long_ids, after_turns))
            warm.append(_start(work, cache, f"warm-{r}", long_ids, None))
            during_turns = conversation(template, tokenizer, salt=f"[while {r}] ")
            during.append(_during(work, work / f"cache-during-{r}", f"during-{r}", during_turns))
            print(f"run {r + 1}: cold {cold[-1]}\n       warm {warm[-1]}\n     during {during[-1]}")
    print(f"\nneuron {DEMO_MODEL_ID}, median of {runs} runs (seconds from process start)")
    print(f"{'cache':>6} {'loaded':>8} {'compiled':>9} {'1st token of 512':>17}")
    for name, starts in (("cold", cold), ("warm", warm)):
        print(
            f"{name:>6} {_median([s.loaded for s in starts]):>8.1f} "
            f"{_median([s.compiled for s in starts]):>9.1f} "
            f"{_median([s.first_token for s in starts]):>17.1f}"
        )
    while_ms = 1000 * _median([t for s in during for t in s.turns])
    after_ms = 1000 * _median([t for s in cold for t in s.turns])
    late = sum(s.late for s in during)
    print(
        f"cached agent turn (turns 2-4) TTFT: {while_ms:.0f} ms during the compile, "
        f"{after_ms:.0f} ms after it: {while_ms / after_ms:.2f}x (target <= 1.5x); "
        f"{late} turns ended after the compile and are left out"
    )


def main() -> None:
    runs_main(__doc__, run, default=3)


if __name__ == "__main__":
    main()

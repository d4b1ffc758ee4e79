"""An agent conversation replayed turn by turn: time to the first token of each turn.

Coding agents resend the whole conversation every turn. This replays a 6-turn one
on the demo model (SmolLM2-135M GGUF, its 4-bit layers packed as `cortex up` runs them, 2
threads): a ~2.1k-token system prompt with tool descriptions, then each turn adds
a tool result and an assistant reply (~190 tokens), rendered with the model's own
chat template. Each turn's prompt is the previous one plus what the turn added.
Three implementations run the same prompts in one process, their runs interleaved:
ours with the prefix cache (each run starts from an empty cache), ours without it
(every turn is a cold prefill), and, when `llama_cpp` (llama-cpp-python) is
importable, llama.cpp on the same GGUF file with its prompt-prefix reuse (it keeps
the KV of the longest common prefix with its previous prompt). Targets: from turn
2 on, ours with the cache at or below llama.cpp and at most 20% of our own cold
prefill of the same prompt.

    python -m bench.agent_turns [--runs 3]
"""

from __future__ import annotations

import itertools
import statistics
import time
from collections.abc import Callable

import torch

from bench.cli import runs_main
from bench.engine import THREADS, open_llama_cpp
from bench.report import Figure
from neuron.config import NeuronConfig
from neuron.demo import demo_gguf_path
from neuron.engine import Engine, EngineRequest, SamplingParams
from neuron.models.loader import LoadedModel, load_model
from neuron.text.chat_template import ChatTemplate

TURNS = 6
RULES = 49  # the system prompt: ~2.1k tokens with the tools
KV_BLOCKS = 320  # 5,120 tokens of 16: room for the longest turn and what it shares
TOOLS = ("read_file", "write_file", "run_shell", "search_code", "list_dir", "apply_patch")

# A prompt's token ids -> seconds to its first sampled token.
FirstToken = Callable[[list[int]], float]


def conversation(template: ChatTemplate, tokenizer, salt: str = "") -> list[list[int]]:
    """The token ids of each turn's prompt, every one a prefix of the next (`salt` opens
    the system prompt: conversations of other salts share no cached block with it)."""
    rules = "\n".join(
        f"Rule {i}: when the task touches module {i}, read its tests first, keep changes "
        f"small, explain them in one sentence and never rewrite unrelated code ({i * 37})."
        for i in range(RULES)
    )
    tools = "\n".join(
        f"Tool {name}: arguments path (string), content (string), reason (string); "
        f"returns the output of {name} as text, or an error naming what was wrong."
        for name in TOOLS
    )
    messages = [
        {"role": "system", "content": f"{salt}You are a coding agent.\n{tools}\n{rules}"},
        {"role": "user", "content": "Fix the failing test in the parser module."},
    ]
    prompts = []
    for turn in range(TURNS):
        text = template.render(messages, add_generation_prompt=True)
        prompts.append(tokenizer.encode(text, add_bos=False))
        listing = " ".join(f"src/module_{turn}_{j}.py" for j in range(9))
        messages += [
            {"role": "assistant", "content": f"I will look at the files of step {turn}: {listing}"},
            {"role": "user", "content": f"Tool result {turn}: " + " ".join(
                f"line {k}: value = compute({k}, {turn})" for k in range(6)
            )},
        ]  # fmt: skip
    for shorter, longer in itertools.pairwise(prompts):
        assert longer[: len(shorter)] == shorter, "each turn must extend the previous prompt"
    return prompts


def ours(loaded: LoadedModel, prefix_cache: bool) -> Callable[[], FirstToken]:
    """A fresh engine per conversation (an empty cache), with the neuron's default limits."""
    defaults = NeuronConfig()

    def start() -> FirstToken:
        engine = Engine(
            loaded,
            num_blocks=KV_BLOCKS,
            block_size=defaults.block_size,
            max_prefill_tokens=defaults.max_prefill_tokens,
            prefix_cache=prefix_cache,
        )
        ids = itertools.count()

        def first_token(prompt: list[int]) -> float:
            params = SamplingParams(max_tokens=1, temperature=0.0, ignore_eos=True)
            began = time.perf_counter()
            engine.add(EngineRequest(f"turn-{next(ids)}", prompt, params))
            while not any(out.token_ids for out in engine.step()):
                pass
            return time.perf_counter() - began

        return first_token

    return start


def llama_cpp(path: str) -> Callable[[], FirstToken] | None:
    """llama.cpp keeping the KV of the longest prefix its previous prompt shares."""
    opened = open_llama_cpp(path, n_ctx=4096)
    if opened is None:
        return None
    llm, next_token = opened

    def start() -> FirstToken:
        llm.reset()

        def first_token(prompt: list[int]) -> float:
            began = time.perf_counter()
            held = llm.input_ids[: llm.n_tokens].tolist()
            common = next(
                (i for i, (a, b) in enumerate(zip(held, prompt, strict=False)) if a != b),
                min(len(held), len(prompt)),
            )
            llm.n_tokens = min(common, len(prompt) - 1)  # its logits need one token run
            llm.eval(prompt[llm.n_tokens :])
            next_token()
            return time.perf_counter() - began

        return first_token

    return start


def run_agent_bench(runs: int = 3) -> list[Figure]:
    torch.set_num_threads(THREADS)
    path = demo_gguf_path()
    loaded = load_model(str(path), device="cpu", dtype="float32", quantization="auto")
    template = ChatTemplate(loaded.chat_template, loaded.tokenizer.bos_token, None)
    prompts = conversation(template, loaded.tokenizer)
    impls = {"cache on": ours(loaded, True), "cache off": ours(loaded, False)}
    baseline = llama_cpp(str(path))
    if baseline is not None:
        impls["llama.cpp"] = baseline
    for start in impls.values():  # warm-up: one short conversation each
        first_token = start()
        first_token(prompts[0][:64])
        first_token(prompts[0][:96])
    times: dict[str, list[list[float]]] = {name: [[] for _ in prompts] for name in impls}
    for _ in range(runs):
        for name, start in impls.items():
            first_token = start()
            for turn, prompt in enumerate(prompts):
                times[name][turn].append(first_token(prompt))
    return report(prompts, times)


def report(prompts: list[list[int]], times: dict[str, list[list[float]]]) -> list[Figure]:
    has_llama = "llama.cpp" in times
    print(f"agent conversation, {TURNS} turns, TTFT in s (median of {len(times['cache on'][0])})")
    header = f"{'turn':>4} {'prompt':>7} {'cache on':>9} {'cache off':>10} {'on/off':>7}"
    print(header + (f" {'llama.cpp':>10} {'on/llama':>9}" if has_llama else "  (no llama_cpp)"))
    figures = []
    for turn, prompt in enumerate(prompts):
        on, off = times["cache on"][turn], times["cache off"][turn]
        row = f"{turn + 1:>4} {len(prompt):>7} {statistics.median(on):>9.3f} "
        row += f"{statistics.median(off):>10.3f} {statistics.median(on) / statistics.median(off):>7.0%}"
        name = f"turn {turn + 1} ({len(prompt)} prompt tokens): TTFT"
        figures.append(
            Figure("agent", f"{name}, prefix cache", "ms", ms(on), "ours, no cache", ms(off))
        )
        if has_llama:
            theirs = times["llama.cpp"][turn]
            row += f" {statistics.median(theirs):>10.3f} {statistics.median(on) / statistics.median(theirs):>9.2f}"
            figures.append(
                Figure(
                    "agent",
                    f"{name}, vs llama.cpp",
                    "ms",
                    ms(on),
                    "llama.cpp prefix reuse",
                    ms(theirs),
                )
            )
        print(row)
    return figures


def ms(seconds: list[float]) -> list[float]:
    return [1000 * s for s in seconds]


def main() -> None:
    runs_main(__doc__, run_agent_bench, 3)


if __name__ == "__main__":
    main()

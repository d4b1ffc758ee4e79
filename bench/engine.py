"""Engine on this CPU: SmolLM2-135M (demo GGUF) decode tokens/s, TTFT and resident weights.

Ours (neuron.models + neuron.engine.Engine) against transformers `generate` on the
same GGUF, dequantised to fp32 by both, with the same prompts, 2 threads, in one
process. Ours also runs in bf16, with weight-only int8 linears (bf16 compute), with the
GGUF's int4 codes (the default) and with fp16 weights (fp32 compute), the last two
also with the compiled decode step, each as its own rows against the same transformers
runs. When `llama_cpp` (llama-cpp-python, `make bench-llamacpp` builds it) is
importable, llama.cpp on the same GGUF file, in its own Q4_1 format and the same
threads, is a second baseline for every variant. TTFT is the time from the request to its
first sampled token; decode tokens/s counts the tokens after the first over the time
after the first, after a 32-token prompt and after one that brings the context to 2,000
tokens (where reading the KV cache weighs as much as the weights). Ours also decodes 16
streams at once: their aggregate tokens/s is set against each
baseline's batch-1 rate (what one user of that engine gets). Last, each variant's
resident weights beside the GGUF file's size.

    python -m bench.engine [--runs 3] [--decode-tokens 32]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from bench.report import Figure
from neuron.demo import demo_gguf_path
from neuron.engine import Engine, EngineRequest, SamplingParams
from neuron.models.loader import LoadedModel, load_model
from neuron_kernels.cpu import cpu_kernels

THREADS = 2
PROMPT_LENGTHS = (32, 512)
# Batch-1 decode also after a long prompt (an agent's context): its tokens end at this
# many, within llama.cpp's context of 2,048.
LONG_CONTEXT = 2000
# Our variants: row label → load_model (dtype, quantization), compiled decode step, the
# int4 kernel's instruction set (None: the CPU's best, `neuron_kernels/cpu`).
VARIANTS = {
    "fp32": ("float32", "none", False, None),
    "bf16": ("bfloat16", "none", False, None),
    "int8 layers": ("float32", "int8", False, None),
    "auto: GGUF int4 layers": ("float32", "auto", False, None),
    "auto, compiled decode (the default)": ("float32", "auto", True, None),
    "auto, compiled decode, AVX2 int4 kernel": ("float32", "auto", True, "avx2"),
    "fp16 layers": ("float32", "fp16", False, None),
    "fp16 layers, compiled decode": ("float32", "fp16", True, None),
}

STREAMS = 16
# Figures of ours whose baselines are another figure of the baseline's.
BASELINE_FIGURE = {f"decode, {STREAMS} streams (aggregate)": "decode, batch 1"}

# (prompt ids, new tokens) -> timestamps: request start, then one per sampled token.
Generate = Callable[[list[int], int], list[float]]
# (prompts, new tokens each) -> aggregate decode tokens/s after every stream's first token.
Streams = Callable[[list[list[int]], int], float]


def prompt_ids(length: int, vocab: int, seed: int = 0) -> list[int]:
    """Ordinary (non-special) token ids, the same for both implementations."""
    gen = torch.Generator().manual_seed(seed)
    return torch.randint(200, vocab - 200, (length,), generator=gen).tolist()


class TokenClock:
    """A transformers logits processor that notes when each token's logits are ready
    (called once per generated token, right after its forward pass)."""

    def __init__(self) -> None:
        self.stamps = [time.perf_counter()]  # the request's start

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        if scores.is_cuda:
            torch.cuda.synchronize(scores.device)
        self.stamps.append(time.perf_counter())
        return scores


def ours(
    loaded: LoadedModel, compiled: bool, instruction_set: str | None, best: str | None
) -> tuple[Generate, Streams]:
    """`instruction_set`: of the int4 kernel this variant runs (None: `best`, the CPU's
    own choice; None where our CPU kernels cannot run)."""
    engine = Engine(
        loaded,
        num_blocks=160,
        block_size=16,
        max_prefill_tokens=2048,  # every prompt here in one step
        compile_cpu_decode=compiled,
    )
    compiled_step = engine.runner.compiled
    if compiled_step is not None and not (
        compiled_step.settled.wait(1800) and compiled_step.batched.is_set()
    ):
        raise RuntimeError(f"the decode step did not compile: {compiled_step.failed}")

    def use_own_kernel() -> None:  # the variants run in turns in one process
        if best is not None:
            torch.ops.neuron_cpu.set_int4_instruction_set(instruction_set or best)

    def run(ids: list[int], new_tokens: int) -> list[float]:
        use_own_kernel()
        params = SamplingParams(max_tokens=new_tokens, temperature=0.0, ignore_eos=True)
        stamps = [time.perf_counter()]
        engine.add(EngineRequest(f"b{stamps[0]}", ids, params))
        while engine.has_work():  # the prompt fits one step: every step samples one token
            engine.step()
            stamps.append(time.perf_counter())
        return stamps

    def streams(prompts: list[list[int]], new_tokens: int) -> float:
        use_own_kernel()
        params = SamplingParams(max_tokens=new_tokens, temperature=0.0, ignore_eos=True)
        for i, ids in enumerate(prompts):
            engine.add(EngineRequest(f"s{i}-{time.perf_counter()}", ids, params))
        first = 0
        while first < len(prompts):  # prefill steps, each ends with first tokens
            first += sum(1 for out in engine.step() if out.completion_tokens == 1)
        began = time.perf_counter()
        while engine.has_work():
            engine.step()
        return len(prompts) * (new_tokens - 1) / (time.perf_counter() - began)

    return run, streams


def transformers_generate(path: str) -> Generate:
    from transformers import AutoModelForCausalLM, LogitsProcessorList

    gguf = Path(path)
    model = AutoModelForCausalLM.from_pretrained(
        str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32
    ).eval()

    def run(ids: list[int], new_tokens: int) -> list[float]:
        clock = TokenClock()
        with torch.inference_mode():
            model.generate(
                torch.tensor([ids]),
                attention_mask=torch.ones(1, len(ids), dtype=torch.long),
                max_new_tokens=new_tokens,
                min_new_tokens=new_tokens,
                do_sample=False,
                logits_processor=LogitsProcessorList([clock]),
                pad_token_id=0,
            )
        return clock.stamps

    return run


def open_llama_cpp(path: str, n_ctx: int) -> tuple[Any, Callable[[], int]] | None:
    """llama.cpp (llama-cpp-python) on the file and its greedy next token, by argmax over
    its logits (so neither side pays for a sampler the other skips); None when it is
    not installed."""
    try:
        import numpy as np
        from llama_cpp import Llama
    except ImportError:
        return None
    llm = Llama(
        model_path=path, n_threads=THREADS, n_threads_batch=THREADS, n_ctx=n_ctx, verbose=False
    )

    def next_token() -> int:
        logits = np.ctypeslib.as_array(llm._ctx.get_logits(), shape=(llm.n_vocab(),))
        return int(np.argmax(logits))

    return llm, next_token


def llama_cpp_generate(path: str) -> Generate | None:
    """llama.cpp decoding greedily from each prompt; None when it is not installed."""
    opened = open_llama_cpp(path, n_ctx=2048)
    if opened is None:
        return None
    llm, next_token = opened

    def run(ids: list[int], new_tokens: int) -> list[float]:
        stamps = [time.perf_counter()]
        llm.reset()
        llm.eval(ids)
        for _ in range(new_tokens):
            token = next_token()
            stamps.append(time.perf_counter())
            llm.eval([token])
        return stamps

    return run


def one_run(
    gen: Generate, streams: Streams | None, vocab: int, seed: int, decode_tokens: int
) -> dict[str, float]:
    """Every figure once for one implementation (`streams` only for ours)."""
    figures = {}
    for length in PROMPT_LENGTHS:
        stamps = gen(prompt_ids(length, vocab, seed=seed), 1)
        figures[f"TTFT, {length}-token prompt"] = 1000 * (stamps[1] - stamps[0])
    stamps = gen(prompt_ids(PROMPT_LENGTHS[0], vocab, seed=seed), decode_tokens + 1)
    figures["decode, batch 1"] = decode_tokens / (stamps[-1] - stamps[1])
    long_prompt = prompt_ids(LONG_CONTEXT - decode_tokens - 1, vocab, seed=seed)
    stamps = gen(long_prompt, decode_tokens + 1)
    figures[f"decode, batch 1, {LONG_CONTEXT}-token context"] = decode_tokens / (
        stamps[-1] - stamps[1]
    )
    if streams is not None:
        prompts = [prompt_ids(PROMPT_LENGTHS[0], vocab, seed=seed + i) for i in range(STREAMS)]
        figures[f"decode, {STREAMS} streams (aggregate)"] = streams(prompts, decode_tokens + 1)
    return figures


def run_engine_bench(
    runs: int = 3, decode_tokens: int = 32, variants: list[str] | None = None
) -> list[Figure]:
    """Both implementations in this process, their runs interleaved so that both see the
    same machine load; prints a table, returns the figures. `variants`: labels of ours
    to run (all by default)."""
    torch.set_num_threads(THREADS)
    path = demo_gguf_path()
    impls: dict[str, tuple[Generate, Streams | None]] = {}
    resident: dict[str, int] = {}
    chosen = {k: v for k, v in VARIANTS.items() if variants is None or k in variants}
    best = torch.ops.neuron_cpu.int4_instruction_set() if cpu_kernels() else None
    if variants is None and best in ("avx2", None):  # the AVX2 row would be the default's
        chosen = {k: v for k, v in chosen.items() if v[3] != "avx2"}
    for label, (dtype, quantization, compiled, instruction_set) in chosen.items():
        loaded = load_model(str(path), device="cpu", dtype=dtype, quantization=quantization)
        impls[label] = ours(loaded, compiled, instruction_set, best)
        resident[label] = loaded.nbytes
    vocab = loaded.config.vocab_size
    impls["transformers"] = (transformers_generate(str(path)), None)
    llama_cpp = llama_cpp_generate(str(path))
    if llama_cpp is not None:
        impls["llama.cpp"] = (llama_cpp, None)
    runs_of: dict[str, dict[str, list[float]]] = {name: {} for name in impls}
    for gen, _ in impls.values():  # warm-up
        gen(prompt_ids(8, vocab, seed=99), 2)
    for run in range(runs):
        for name, (gen, streams) in impls.items():
            for figure, value in one_run(gen, streams, vocab, run, decode_tokens).items():
                runs_of[name].setdefault(figure, []).append(value)
    # Each baseline: (its implementation, how the report names it, the suffix of our rows).
    baselines = [("transformers", "transformers generate", "")]
    if llama_cpp is not None:
        baselines.append(("llama.cpp", "llama.cpp, same GGUF (Q4_1)", " vs llama.cpp"))
    figures = [
        Figure(
            "engine",
            f"SmolLM2-135M {name} ({label}, {THREADS} threads){suffix}",
            "tok/s" if name.startswith("decode") else "ms",
            values,
            baseline_name,
            runs_of[baseline][BASELINE_FIGURE.get(name, name)],
        )
        for baseline, baseline_name, suffix in baselines
        for label in chosen
        for name, values in runs_of[label].items()
    ]
    print(f"{'figure':<84}{'ours':>10}{'baseline':>10}  baseline")
    for f in figures:
        ours_median, theirs = statistics.median(f.ours), statistics.median(f.baseline)
        print(f"{f.name:<84}{ours_median:>10.1f}{theirs:>10.1f}  {f.baseline_name}")
    size = path.stat().st_size
    for label, nbytes in resident.items():
        print(
            f"resident weights, {label}: {nbytes / 2**20:.0f} MiB ({nbytes / size:.2f}x the GGUF)"
        )
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--decode-tokens", type=int, default=32)
    parser.add_argument("--variant", action="append", choices=list(VARIANTS), help="repeatable")
    args = parser.parse_args()
    run_engine_bench(args.runs, args.decode_tokens, args.variant)


if __name__ == "__main__":
    main()

"""Embeddings/s of a neuron's POST /v1/embeddings beside llama.cpp's embedding API, on the
demo GGUF (SmolLM2-135M-Instruct Q4_1), in one run.

One request holds 16 inputs of 128 tokens each; the figure is 16 over its wall time
(the median of `--runs`, after a warm-up). Both sides pool the last token and
L2-normalise. llama.cpp (llama-cpp-python, `Llama(embedding=True)`, the same
threads, while the neuron idles) is measured when `llama_cpp` is importable
(`make bench-llamacpp` installs it); otherwise the script says so and prints ours
alone. Prints figures; asserts nothing.

    python -m bench.embeddings [--runs 5] [--inputs 16] [--tokens 128]
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from collections.abc import Callable

from bench.engine import THREADS
from bench.neuron_http import demo_neuron
from neuron.demo import DEMO_MODEL_ID, demo_gguf_path
from neuron.models.gguf_io import open_gguf
from neuron.text.tokenizer import Tokenizer
from tests.support.http import http

WORDS = ("river", "stone", "garden", "light", "engine", "paper", "window", "cloud", "music")


def make_texts(tokenizer: Tokenizer, count: int, tokens: int) -> list[str]:
    """`count` distinct texts of about `tokens` tokens each (cut at a token boundary)."""
    rng = random.Random(0)
    texts = []
    for i in range(count):
        words = " ".join(rng.choice(WORDS) for _ in range(tokens * 2))
        ids = tokenizer.encode(f"{i} {words}", add_bos=False)[:tokens]
        texts.append(tokenizer.decode(ids))
    return texts


def median_rate(run: Callable[[], object], count: int, runs: int) -> float:
    """Inputs per second: `count` over the median wall time of `runs` calls, after one."""
    run()
    walls = []
    for _ in range(runs):
        start = time.perf_counter()
        run()
        walls.append(time.perf_counter() - start)
    return count / statistics.median(walls)


def ours(url: str, texts: list[str], runs: int) -> tuple[float, int]:
    """(embeddings/s, tokens per input) through HTTP, one request per batch."""
    body = {"model": DEMO_MODEL_ID, "input": texts, "encoding_format": "base64"}
    reply = http("POST", url + "/v1/embeddings", body)
    if reply.status != 200:
        raise RuntimeError(f"/v1/embeddings answered {reply.status}: {reply.text[:300]}")
    tokens = reply.json()["usage"]["prompt_tokens"] // len(texts)
    return median_rate(lambda: http("POST", url + "/v1/embeddings", body), len(texts), runs), tokens


def llama_cpp(texts: list[str], runs: int) -> tuple[float, int] | None:
    """(embeddings/s, tokens per input) of llama.cpp's `embed`; None when not installed."""
    try:
        import llama_cpp as lc
    except ImportError:
        return None
    llm = lc.Llama(
        model_path=str(demo_gguf_path()),
        embedding=True,
        pooling_type=lc.LLAMA_POOLING_TYPE_LAST,
        n_ctx=4096,
        n_batch=4096,
        n_ubatch=4096,
        n_threads=THREADS,
        n_threads_batch=THREADS,
        verbose=False,
    )
    _vectors, count = llm.embed(texts, normalize=True, return_count=True)
    return median_rate(lambda: llm.embed(texts, normalize=True), len(texts), runs), count // len(
        texts
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--inputs", type=int, default=16)
    parser.add_argument("--tokens", type=int, default=128)
    args = parser.parse_args()
    tokenizer = Tokenizer.from_gguf(open_gguf(demo_gguf_path()))
    texts = make_texts(tokenizer, args.inputs, args.tokens)
    # Prefill only: the background compile of the decode step would only take CPU.
    with demo_neuron(256, "cpu_compile = false") as (proc, _log):
        rate, tokens = ours(proc.url, texts, args.runs)
    print(f"{args.inputs} inputs x {tokens} tokens, {DEMO_MODEL_ID}, median of {args.runs} runs")
    print(f"{'engine':<10} {'embeddings/s':>13} {'tokens/s':>10} {'÷ llama.cpp':>12}")
    baseline = llama_cpp(texts, args.runs)
    ratio = f"{rate / baseline[0]:>12.2f}" if baseline else f"{'':>12}"
    print(f"{'neuron':<10} {rate:>13.1f} {rate * tokens:>10.0f} {ratio}")
    if baseline is None:
        print("llama.cpp: not measured (llama_cpp is not importable; make bench-llamacpp)")
    else:
        print(f"{'llama.cpp':<10} {baseline[0]:>13.1f} {baseline[0] * baseline[1]:>10.0f}")


if __name__ == "__main__":
    main()

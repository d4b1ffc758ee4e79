"""How close each CPU weight format stays to the dequantised fp32 model (demo GGUF).

Teacher-forced over the fixed 2,000-token corpus (tests/models/data/corpus.txt): the
share of positions whose most likely next token is the fp32 model's (top-1
agreement), and how far the log-probability of the fp32 model's choice moves (mean
and max |Δ logprob|). Ours is measured on both serving paths: the prompt path (the
whole corpus in one prefill) and the decode path (the second half, one token per
step after the first half as a prompt: packed kernels on one row, the vocabulary
head ranking and refining). When `llama_cpp`
is importable, llama.cpp on the same file, in its own Q4_1 format, is measured the
same way (all logits of one evaluation).

    python -m bench.agreement
"""

from __future__ import annotations

from pathlib import Path

import torch

from bench.engine import THREADS, VARIANTS
from neuron.demo import demo_gguf_path
from neuron.models.llama import LlamaForCausalLM
from neuron.models.loader import load_model
from tests.models.paged import PagedRunner

CORPUS = Path(__file__).resolve().parents[1] / "tests" / "models" / "data" / "corpus.txt"
TOKENS = 2000
BLOCKS = 160  # 2,560 cache slots of 16


def closeness(ref: torch.Tensor, got: torch.Tensor) -> tuple[float, float, float]:
    """(top-1 agreement, mean and max |Δ logprob| of the reference's argmax)."""
    chosen = ref.argmax(-1, keepdim=True)
    delta = (
        torch.log_softmax(ref, -1).gather(1, chosen) - torch.log_softmax(got, -1).gather(1, chosen)
    ).abs()
    agreement = (chosen.squeeze(1) == got.argmax(-1)).float().mean().item()
    return agreement, delta.mean().item(), delta.max().item()


def prompt_path(model: LlamaForCausalLM, ids: list[int]) -> torch.Tensor:
    return PagedRunner(model, num_blocks=BLOCKS).prefill({"s": ids})


def decode_path(model: LlamaForCausalLM, ids: list[int]) -> torch.Tensor:
    """Logits of the second half's positions, one per step after the first half."""
    runner = PagedRunner(model, num_blocks=BLOCKS)
    half = len(ids) // 2
    runner.prefill({"s": ids[:half]})
    return torch.cat([runner.decode({"s": token}) for token in ids[half:-1]])


def llama_cpp_logits(path: str, ids: list[int]) -> torch.Tensor | None:
    try:
        import numpy as np
        from llama_cpp import Llama
    except ImportError:
        return None
    llm = Llama(
        model_path=path, n_threads=THREADS, n_ctx=len(ids) + 16, logits_all=True, verbose=False
    )
    llm.eval(ids)
    return torch.from_numpy(np.array(llm.scores[: len(ids)], dtype=np.float32))


def main() -> None:
    torch.set_num_threads(THREADS)
    path = str(demo_gguf_path())
    fp32 = load_model(path, "cpu", "float32")
    ids = fp32.tokenizer.encode(CORPUS.read_text(encoding="utf-8"))[:TOKENS]
    ref = prompt_path(fp32.model, ids)
    ref_decode = ref[len(ids) // 2 : -1]
    print(f"against the dequantised fp32 model, {len(ids)} corpus tokens, teacher-forced")
    print(f"{'weights':<28}{'path':<8}{'top-1 agreement':>17}{'mean |Δlp|':>12}{'max |Δlp|':>11}")
    for label, (dtype, quantization, compiled, _) in VARIANTS.items():
        if label == "fp32" or compiled:  # the compiled step generates what eager does
            continue
        model = load_model(path, "cpu", dtype, quantization=quantization).model
        for name, logits, against in (
            ("prompt", prompt_path(model, ids), ref),
            ("decode", decode_path(model, ids), ref_decode),
        ):
            agreement, mean, most = closeness(against, logits)
            print(f"{label:<28}{name:<8}{agreement:>17.2%}{mean:>12.4f}{most:>11.3f}")
    theirs = llama_cpp_logits(path, ids)
    if theirs is not None:
        agreement, mean, most = closeness(ref, theirs)
        print(f"{'llama.cpp (Q4_1)':<28}{'prompt':<8}{agreement:>17.2%}{mean:>12.4f}{most:>11.3f}")


if __name__ == "__main__":
    main()

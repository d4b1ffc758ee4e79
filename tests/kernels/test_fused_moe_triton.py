"""The Triton fused MoE kernel against its torch reference (interpreter on CPU, or GPU):
experts that get no token, one that gets them all, top-k of 1, 2 and 8, ragged counts."""

from __future__ import annotations

import pytest

from tests.kernels.runners import needs_cuda, run_on_gpu

CASES = {
    # name: (tokens, experts, top_k, hidden, inter, routing)
    "top1-ragged": (13, 4, 1, 32, 16, "random"),
    "top2-idle-experts": (5, 16, 2, 32, 48, "random"),
    "top2-all-to-expert0": (19, 8, 2, 32, 16, "skewed"),
    "top8-of-8": (3, 8, 8, 48, 16, "random"),
    "one-token": (1, 8, 2, 64, 32, "random"),
}


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
@pytest.mark.parametrize("name", list(CASES))
def test_fused_moe_matches_reference(triton_run, name: str, dtype: str) -> None:
    tokens, experts, top_k, hidden, inter, routing = CASES[name]
    triton_run(
        "fused_moe", tokens=tokens, experts=experts, top_k=top_k, hidden=hidden,
        inter=inter, routing=routing, dtype=dtype,
    )  # fmt: skip


def test_launch_settings_come_from_one_function() -> None:
    """What an ahead-of-time compile test asks for: the settings of a decode-sized and a
    prompt-sized launch, blocks no narrower than tl.dot allows."""
    pytest.importorskip("triton")
    from neuron_kernels.fused_moe_triton import fused_moe_config

    decode, prompt = fused_moe_config(8, 128, 1536, 2048), fused_moe_config(4096, 128, 1536, 2048)
    assert decode["BLOCK_M"] < prompt["BLOCK_M"]
    for cfg in (decode, prompt):
        assert min(cfg["BLOCK_M"], cfg["BLOCK_N"], cfg["BLOCK_K"]) >= 16
        assert cfg["num_warps"] in (1, 2, 4, 8)


@pytest.mark.cuda
@needs_cuda
def test_fused_moe_in_a_cuda_graph() -> None:
    run_on_gpu("fused_moe_graph")

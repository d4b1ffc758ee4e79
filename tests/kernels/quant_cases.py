"""Random packed weights in each layout the loaders produce (GGUF, AWQ, GPTQ)."""

from __future__ import annotations

import torch

from neuron_kernels.quant_matmul_ref import PackedWeight

# name: (bits, group, zero, offset, supergroup) — which file format each one mirrors
LAYOUTS = {
    "q4_0": (4, 32, 8, False, 1),  # symmetric 4-bit (GPTQ sym)
    "q4_1": (4, 32, 0, True, 1),  # scale and offset per group (AWQ, GPTQ with zeros)
    "q4_k": (4, 32, 0, True, 8),  # 6-bit sub-scales and mins under fp16 super-scales
    "q8_0": (8, 32, 0, False, 1),
    "q6_k": (8, 16, 0, False, 16),
    "q5_k": (8, 32, 0, True, 8),
    "awq128": (4, 128, 0, True, 1),
}


def packed_weight(layout: str, n: int, k: int, seed: int = 0, device: str = "cpu") -> PackedWeight:
    bits, group, zero, has_offset, supergroup = LAYOUTS[layout]
    gen = torch.Generator().manual_seed(seed)
    groups = -(-k // group)
    if bits == 4:
        codes = torch.randint(0, 256, (n, (k + 1) // 2), dtype=torch.uint8, generator=gen)
    else:
        codes = torch.randint(-128, 128, (n, k), dtype=torch.int8, generator=gen)
    supers = -(-groups // supergroup)
    if supergroup > 1:  # small integer sub-scales times fp16 super-scales, as in K-quants
        scale = torch.randint(0, 64, (n, groups), dtype=torch.uint8, generator=gen)
        offset = torch.randint(0, 64, (n, groups), dtype=torch.uint8, generator=gen)
        super_scale = (torch.rand(n, supers, generator=gen) * 0.004).half()
        super_offset = (-torch.rand(n, supers, generator=gen) * 0.004).half()
    else:
        scale = (torch.rand(n, groups, generator=gen) * 0.05 + 0.01).half()
        offset = (torch.rand(n, groups, generator=gen) - 0.5).half()
        super_scale = super_offset = None
    weight = PackedWeight(
        bits,
        codes,
        scale,
        offset if has_offset else None,
        group,
        k,
        zero=zero,
        super_scale=super_scale,
        super_offset=super_offset if has_offset else None,
        supergroup=supergroup,
    )
    return weight.map_rows(lambda t: t.to(device))

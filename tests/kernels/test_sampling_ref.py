"""The torch sampler: exact greedy and penalties, sampled distributions against
probabilities computed independently here, and per-row seeded reproducibility."""

from __future__ import annotations

import math

import pytest
import torch

from neuron_kernels import SamplingBatch, SamplingRow
from neuron_kernels.sampling import EXP_MIN, exponentials, row_keys
from neuron_kernels.sampling_ref import apply_penalties_ref, sample_ref
from tests.kernels.cases import logits

DRAWS = 20_000


def expected_probs(row: torch.Tensor, params: SamplingRow) -> torch.Tensor:
    """Temperature, then top-k, top-p (smallest prefix reaching the mass), min-p."""
    p = torch.softmax(row.double() / params.temperature, dim=-1)
    order = torch.argsort(p, descending=True).tolist()
    keep = set(order[: params.top_k] if params.top_k else order)
    if params.top_p < 1.0:
        kept_mass = sum(float(p[i]) for i in keep)
        mass, nucleus = 0.0, set()
        for i in (i for i in order if i in keep):
            nucleus.add(i)
            mass += float(p[i])
            if mass >= params.top_p * kept_mass:
                break
        keep = nucleus
    peak = float(p.max())
    keep = {i for i in keep if float(p[i]) >= params.min_p * peak}
    out = torch.zeros_like(p)
    for i in keep:
        out[i] = p[i]
    return out / out.sum()


def draw(row: torch.Tensor, params: SamplingRow, n: int = DRAWS) -> torch.Tensor:
    """n draws of one row: half with distinct seeds, half one seed at distinct offsets."""
    one = SamplingBatch.from_rows([params])
    batch = SamplingBatch(
        columns={name: t.repeat_interleave(n, 0) for name, t in one.columns.items()},
        penalty_ids=one.penalty_ids.repeat_interleave(n, 0),
        output_counts=one.output_counts.repeat_interleave(n, 0),
    )
    i = torch.arange(n)
    batch.columns["seed"] = torch.where(i < n // 2, i, 12345)
    batch.columns["offset"] = torch.where(i < n // 2, 0, i)
    return sample_ref(row.expand(n, -1), batch)


def assert_matches(tokens: torch.Tensor, probs: torch.Tensor) -> None:
    freq = torch.bincount(tokens, minlength=probs.shape[0]).double() / tokens.shape[0]
    assert torch.all(freq[probs == 0] == 0), "sampled a token outside the allowed set"
    sigma = torch.sqrt(probs * (1 - probs) / tokens.shape[0])
    excess = (freq - probs).abs() - (5 * sigma + 1e-3)
    assert float(excess.max()) <= 0, (freq.tolist(), probs.tolist())


@pytest.mark.parametrize(
    "params",
    [
        SamplingRow(temperature=1.0),
        SamplingRow(temperature=0.6),
        SamplingRow(temperature=1.7),
        SamplingRow(top_k=3),
        SamplingRow(top_p=0.6),
        SamplingRow(min_p=0.2),
        SamplingRow(temperature=1.3, top_k=6, top_p=0.8, min_p=0.05),
    ],
    ids=["t1", "t0.6", "t1.7", "topk3", "topp0.6", "minp0.2", "combined"],
)
def test_sampled_distribution(params: SamplingRow) -> None:
    row = logits(1, 12, spread=1.5, seed=3)[0]
    assert_matches(draw(row, params), expected_probs(row, params))


def test_distribution_with_penalties() -> None:
    params = SamplingRow(
        repetition_penalty=1.5, presence_penalty=0.4, frequency_penalty=0.3,
        prompt_ids=[1, 4], output_ids=[4, 7, 7],
    )  # fmt: skip
    row = logits(1, 10, spread=1.0, seed=5)[0]
    penalised = row.clone()
    for i in (1, 4, 7):
        penalised[i] = penalised[i] / 1.5 if penalised[i] > 0 else penalised[i] * 1.5
    penalised[4] -= 0.3 * 1 + 0.4
    penalised[7] -= 0.3 * 2 + 0.4
    assert_matches(draw(row, params), expected_probs(penalised, SamplingRow()))


def test_penalties_touch_only_the_listed_ids() -> None:
    x = logits(2, 30, seed=1)
    batch = SamplingBatch.from_rows(
        [
            SamplingRow(repetition_penalty=1.3, prompt_ids=[3, 5], output_ids=[5, 9, 9, 9],
                        presence_penalty=0.5, frequency_penalty=0.25),
            SamplingRow(repetition_penalty=0.8, prompt_ids=[0]),
        ]
    )  # fmt: skip
    got = x.clone()
    apply_penalties_ref(got, batch)
    want = x.clone()
    for row, ids, counts, rep, pres, freq in [
        (0, [3, 5, 9], [0, 1, 3], 1.3, 0.5, 0.25),
        (1, [0], [0], 0.8, 0.0, 0.0),
    ]:
        for i, c in zip(ids, counts, strict=True):
            v = want[row, i]
            v = v / rep if v > 0 else v * rep
            want[row, i] = v - freq * c - pres * (c > 0)
    torch.testing.assert_close(got, want, atol=1e-6, rtol=1e-6)
    changed = (got != x).nonzero().tolist()
    assert changed == [[0, 3], [0, 5], [0, 9], [1, 0]]


def test_from_rows_collects_unique_ids_and_output_counts() -> None:
    batch = SamplingBatch.from_rows(
        [SamplingRow(prompt_ids=[4, 2, 4], output_ids=[2, 7, 7]), SamplingRow()]
    )
    assert batch.penalty_ids.tolist() == [[4, 2, 7], [-1, -1, -1]]
    assert batch.output_counts.tolist() == [[0, 1, 2], [0, 0, 0]]
    assert batch.penalty_ids.dtype == torch.int64 and batch.columns["top_k"].dtype == torch.int32


def test_greedy_and_top_k_1_are_the_argmax() -> None:
    x = logits(64, 300, seed=2)
    rows = [
        SamplingRow(temperature=0.0, seed=i) if i % 2 else SamplingRow(top_k=1, seed=i,
                                                                        temperature=0.5 + i)
        for i in range(64)
    ]  # fmt: skip
    assert torch.equal(sample_ref(x, SamplingBatch.from_rows(rows)), x.argmax(dim=-1))


def test_greedy_breaks_ties_to_the_first_id() -> None:
    x = torch.zeros(1, 20)
    x[0, [6, 11]] = 2.0
    assert sample_ref(x, SamplingBatch.from_rows([SamplingRow(temperature=0)])).item() == 6


def test_low_precision_logits_are_sampled_in_fp32() -> None:
    x = logits(16, 200, seed=4).to(torch.bfloat16)
    batch = SamplingBatch.from_rows([SamplingRow(top_p=0.9, seed=i) for i in range(16)])
    assert torch.equal(sample_ref(x, batch), sample_ref(x.float(), batch))


def test_a_seeded_row_ignores_the_rest_of_the_batch() -> None:
    x = logits(1, 200, spread=0.5, seed=6)[0]
    mine = SamplingRow(temperature=0.9, top_p=0.95, seed=77, offset=5)
    alone = sample_ref(x[None], SamplingBatch.from_rows([mine]))
    others = [SamplingRow(top_k=3, seed=s) for s in range(5)]
    crowd = sample_ref(
        torch.cat([logits(3, 200, seed=7), x[None], logits(2, 200, seed=8)]),
        SamplingBatch.from_rows([*others[:3], mine, *others[3:]]),
    )
    assert crowd[3] == alone[0]


def test_seeds_and_offsets_drive_the_draws() -> None:
    x = logits(1, 500, spread=0.1, seed=9).expand(40, -1)  # nearly flat: draws spread out

    def run(seed: int) -> list[int]:
        rows = [SamplingRow(seed=seed, offset=i) for i in range(40)]
        return sample_ref(x, SamplingBatch.from_rows(rows)).tolist()

    assert run(1) == run(1)
    assert run(1) != run(2)
    assert len(set(run(1))) > 30  # successive offsets give fresh draws


def test_exponential_draws_are_exp1() -> None:
    keys = row_keys(torch.arange(4), torch.zeros(4, dtype=torch.long))
    e = exponentials(keys.unsqueeze(1), torch.arange(50_000).unsqueeze(0)).flatten()
    assert float(e.min()) >= EXP_MIN
    assert abs(float(e.mean()) - 1.0) < 0.01
    assert abs(float((e > 1.0).double().mean()) - math.exp(-1)) < 0.005

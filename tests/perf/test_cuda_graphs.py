"""The CUDA decode fast path.

On CPU the fast path is off (`ModelRunner.graphs is None`), so capture and replay
are not covered here: only the CUDA-marked test below (run by bench/gpu_check.sh)
exercises them. What the CPU can check honestly is everything around the graph:
bucket choice, padding to a bucket, the static buffers, and that a decode step
over those padded buffers (run eagerly, `capture=False`) samples exactly the
tokens of the ordinary path.
"""

from __future__ import annotations

import pytest
import torch

from bench.gpu_e2e import SHAPES, TOY, random_model
from neuron.engine import Engine, EngineRequest, SamplingParams
from neuron.engine.cuda_graphs import (
    GraphedDecoder,
    StaticDecodeInputs,
    bucket_for,
    bucket_sizes,
    decode_columns,
    graphs_enabled,
)
from neuron.models.loader import LoadedModel
from tests.engine.drive import prompt, run_to_end


def requests(count: int, max_tokens: int = 6) -> list[EngineRequest]:
    """Prompts of different lengths, greedy and sampled, some with penalties or logprobs."""
    kinds = [
        SamplingParams(max_tokens=max_tokens, temperature=0.0, ignore_eos=True),
        SamplingParams(max_tokens=max_tokens, temperature=0.8, seed=7, ignore_eos=True),
        SamplingParams(max_tokens=max_tokens, top_k=5, top_p=0.9, seed=3, ignore_eos=True),
        SamplingParams(max_tokens=max_tokens, temperature=0.0, logprobs=2, ignore_eos=True),
        SamplingParams(max_tokens=max_tokens, repetition_penalty=1.3, seed=1, ignore_eos=True),
    ]
    return [
        EngineRequest(f"r{i}", prompt(3 + 11 * i, start=150 + i), kinds[i % len(kinds)])
        for i in range(count)
    ]


def generate(loaded: LoadedModel, reqs: list[EngineRequest], graphs) -> dict:
    engine = Engine(loaded, num_blocks=64, block_size=4)
    if graphs is not None:
        engine.runner.graphs = graphs(engine)
    for request in reqs:
        engine.add(request)
    return {rid: r.token_ids for rid, r in run_to_end(engine).items()}


def test_buckets_are_powers_of_two_then_steps_of_32() -> None:
    assert bucket_sizes(256) == [1, 2, 4, 8, 16, 32, 64, 96, 128, 160, 192, 224, 256]
    assert bucket_sizes(20) == [1, 2, 4, 8, 16]
    sizes = bucket_sizes()
    assert [bucket_for(n, sizes) for n in (1, 2, 3, 5, 9, 17, 33, 65, 256)] == [
        1, 2, 4, 8, 16, 32, 64, 96, 256,
    ]  # fmt: skip
    assert bucket_for(257, sizes) is None


def test_fast_path_is_off_on_cpu(loaded_cpu: LoadedModel) -> None:
    """CPU serving never captures graphs: the runner has no fast path at all."""
    assert not graphs_enabled(torch.device("cpu"))
    assert Engine(loaded_cpu, num_blocks=8).runner.graphs is None


def test_padding_repeats_row_zero_and_pads_tables(loaded_cpu: LoadedModel) -> None:
    engine = Engine(loaded_cpu, num_blocks=32, block_size=4)
    for request in requests(3):
        engine.add(request)
    engine.step()  # prefill all three
    seqs = sorted(engine.scheduler.running, key=lambda s: s.seq_id)
    for seq in seqs:  # decode reserves room for the token about to be written
        engine.block_manager.reserve(seq, seq.num_tokens)
    columns, tables = decode_columns(seqs, block_size=4, bucket=4, width=8)
    first = seqs[0]
    position = first.num_tokens - 1
    assert columns["input_ids"] == [s.token_ids[-1] for s in seqs] + [first.token_ids[-1]]
    assert columns["positions"] == [s.num_tokens - 1 for s in seqs] + [position]
    slot = first.block_table[position // 4] * 4 + position % 4
    assert columns["slot_mapping"][0] == columns["slot_mapping"][3] == slot
    assert columns["context_lens"] == [s.num_tokens for s in seqs] + [first.num_tokens]
    assert columns["temperature"] == [0.0, 0.8, 1.0, 0.0]  # the padded row is greedy
    assert all(len(t) == 8 for t in tables) and tables[3] == tables[0]
    assert tables[2][: len(seqs[2].block_table)] == seqs[2].block_table
    with pytest.raises(ValueError, match="do not fit"):
        decode_columns(seqs, block_size=4, bucket=2, width=8)
    with pytest.raises(ValueError, match="exceeds width"):
        decode_columns(seqs, block_size=4, bucket=4, width=1)


def test_static_buffers_take_a_step_and_expose_its_bucket() -> None:
    inputs = StaticDecodeInputs(rows=8, width=3, device=torch.device("cpu"))
    columns = {name: [1, 2, 3, 4] for name in inputs.columns}
    inputs.load(columns, [[5, 6, 0], [7, 0, 0], [5, 6, 0], [5, 6, 0]])
    view = inputs.view(4)
    assert view["positions"].tolist() == [1, 2, 3, 4]
    assert view["context_lens"].dtype == torch.int32
    assert inputs.columns["input_ids"][4:].tolist() == [0] * 4  # rows past the bucket untouched
    assert inputs.block_tables[:2].tolist() == [[5, 6, 0], [7, 0, 0]]
    batch = inputs.sampling_batch(4)
    assert batch.size == 4 and batch.penalty_ids.shape == (4, 0)


@pytest.mark.parametrize("count", [3, 5])
def test_padded_static_step_samples_what_the_eager_path_samples(
    loaded_cpu: LoadedModel, count: int
) -> None:
    """3 rows pad to 4 and 5 to 8; greedy, seeded, top-k/p, logprob and penalty rows."""
    want = generate(loaded_cpu, requests(count), graphs=None)
    decoders: list[GraphedDecoder] = []

    def eager_static(engine: Engine) -> GraphedDecoder:
        decoders.append(GraphedDecoder(engine.runner.model, engine.kv_cache, capture=False))
        return decoders[0]

    got = generate(loaded_cpu, requests(count), graphs=eager_static)
    assert got == want
    assert all(len(tokens) == 6 for tokens in got.values())
    assert not decoders[0]._graphs  # nothing was captured on the CPU


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs an NVIDIA GPU")
@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_cuda_graphs_change_no_greedy_token(shape: str) -> None:
    """Toy-sized random models of each benchmark shape (made on the GPU: the GPU host
    has no model files). fp32, so that the graphs' fixed block-table width (another
    split count in the decode attention, another summation order) stays far below a
    token flip; 5 sequences pad to a bucket of 8."""
    loaded = random_model({**SHAPES[shape], **TOY}, torch.float32, torch.device("cuda"))
    greedy = [
        EngineRequest(
            f"g{i}",
            [(start + 7 * j) % TOY["vocab_size"] for j in range(3 + 11 * i)],
            SamplingParams(max_tokens=24, temperature=0.0, ignore_eos=True),
        )
        for i, start in enumerate(range(150, 155))
    ]
    decoders: list[GraphedDecoder | None] = []

    def keep(engine: Engine) -> GraphedDecoder | None:
        decoders.append(engine.runner.graphs)
        return engine.runner.graphs

    got = generate(loaded, greedy, graphs=keep)
    eager = generate(loaded, greedy, graphs=lambda engine: None)
    graphs = decoders[0]
    assert graphs is not None  # on by default on CUDA
    assert got == eager
    assert all(len(tokens) == 24 for tokens in got.values())
    assert graphs._graphs and not graphs.failed  # decode steps really replayed graphs

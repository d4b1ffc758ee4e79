"""Dispatch policy: references on CPU, Triton never launched on CPU uncompiled."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

import neuron_kernels as kernels
from neuron_kernels import dispatch
from neuron_kernels.attention_ref import decode_attention_ref, prefill_attention_ref
from neuron_kernels.sampling_ref import sample_ref
from tests.kernels.cases import decode_case, logits, prefill_case
from tests.kernels.runners import ROOT


def test_cpu_tensors_take_the_reference_path() -> None:
    assert not dispatch.use_triton(torch.zeros(1))
    case = prefill_case([2, 4], [3, 4], heads=4, kv_heads=2, head_dim=16)
    assert torch.equal(case.call(kernels.prefill_attention), case.call(prefill_attention_ref))
    dec = decode_case([11, 3], heads=4, kv_heads=2, head_dim=16)
    assert torch.equal(
        kernels.decode_attention(*dec.args(), dec.scale),
        decode_attention_ref(*dec.args(), dec.scale),
    )
    batch = kernels.SamplingBatch.from_rows([kernels.SamplingRow(seed=s) for s in range(4)])
    x = logits(4, 50)
    assert torch.equal(kernels.sample(x, batch), sample_ref(x, batch))


def test_launch_guard_refuses_cpu_outside_the_interpreter(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    with pytest.raises(RuntimeError, match="CUDA"), dispatch.launch_guard(torch.zeros(1)):
        pass


def test_launch_guard_holds_the_interpreter_lock(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    assert not dispatch.INTERPRETER_LOCK.locked()
    with dispatch.launch_guard(torch.zeros(1)):
        assert dispatch.INTERPRETER_LOCK.locked()
    assert not dispatch.INTERPRETER_LOCK.locked()


def test_interpreted_launches_from_several_threads_agree(interpreter) -> None:
    interpreter.run("concurrent_decode", threads=3)


def test_references_work_where_triton_cannot_be_imported() -> None:
    """A host without Triton (e.g. macOS) still serves through the references."""
    script = """
import sys
sys.modules["triton"] = None  # any `import triton` now raises ImportError
import torch
import neuron_kernels as kernels
from neuron_kernels.dispatch import triton_available
assert not triton_available()
q = torch.randn(3, 4, 16)
cu = torch.tensor([0, 3], dtype=torch.int32)
assert kernels.prefill_attention(q, q[:, :2], q[:, :2], cu, cu, 3, 3, 0.25).shape == q.shape
cache = torch.zeros(2, 8, 2, 16)
kernels.store_kv(q[:, :2], q[:, :2], cache, cache.clone(), torch.tensor([0, 1, 9]))
tables = torch.tensor([[0, 1]], dtype=torch.int32)
lens = torch.tensor([10], dtype=torch.int32)
assert kernels.decode_attention(q[:1], cache, cache, tables, lens, 0.25).shape == (1, 4, 16)
batch = kernels.SamplingBatch.from_rows([kernels.SamplingRow(top_p=0.9)])
assert 0 <= int(kernels.sample(torch.randn(1, 50), batch)) < 50
assert "triton" not in [m.split(".")[0] for m in sys.modules if sys.modules[m] is not None]
print("ok")
"""
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"

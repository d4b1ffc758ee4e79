"""Device workers in-process: a real engine on its own thread, and failure isolation."""

from __future__ import annotations

import asyncio
import threading

import pytest

from neuron.config import NeuronConfig
from neuron.devices import cpu_device
from neuron.engine.factory import build_engine
from neuron.engine.records import EngineRequest
from neuron.engine.sampling_params import SamplingParams
from neuron.worker import DeviceWorker, WorkerFailed


@pytest.fixture
async def workers(neuron_models):
    loop = asyncio.get_running_loop()
    first, second = cpu_device(), cpu_device()
    second.id, second.index = "cpu-1", 1
    pair = [DeviceWorker(first, loop), DeviceWorker(second, loop)]
    for worker in pair:
        worker.start()
    yield pair
    for worker in pair:
        await asyncio.to_thread(worker.stop)


def _attach(worker: DeviceWorker, models_dir) -> asyncio.Future:
    config = NeuronConfig(models_dir=models_dir, cpu_kv_cache_mb=4)
    return worker.attach(
        "tiny-llama", lambda: build_engine(config, "tiny-llama", worker.device, "float32", 256)
    )


async def _generate(worker: DeviceWorker, rid: str) -> list:
    queue: asyncio.Queue = asyncio.Queue()
    params = SamplingParams(max_tokens=4, temperature=0, ignore_eos=True)
    await worker.submit("tiny-llama", EngineRequest(rid, [1, 2, 3], params), queue.put_nowait)
    outputs = []
    while not outputs or not getattr(outputs[-1], "finished", True):
        outputs.append(await queue.get())
    return outputs


async def test_jobs_run_on_the_named_device_thread(workers, neuron_models):
    names = await asyncio.gather(*(w.call(lambda: threading.current_thread().name)
                                   for w in workers))  # fmt: skip
    assert names == ["cpu-0", "cpu-1"]
    facts = await _attach(workers[0], neuron_models)
    assert facts.context_length == 256 and facts.kv_blocks > 0
    outputs = await _generate(workers[0], "a")
    assert outputs[-1].finished and outputs[-1].completion_tokens == 4
    await workers[0].call(lambda: None)  # stats are published after the step's outputs
    stats = workers[0].stats["tiny-llama"]
    assert stats.free_blocks == stats.total_blocks


async def test_engine_failure_fails_only_its_worker(workers, neuron_models):
    await asyncio.gather(*(_attach(w, neuron_models) for w in workers))

    def break_engine() -> None:  # the next forward pass raises, as a device fault would
        engine = workers[0]._engines["tiny-llama"]
        engine.runner.run = lambda batch: (_ for _ in ()).throw(RuntimeError("device fault"))

    await workers[0].call(break_engine)
    outputs = await _generate(workers[0], "doomed")
    assert isinstance(outputs[-1], WorkerFailed) and "device fault" in str(outputs[-1])
    assert workers[0].failed is not None and "device fault" in workers[0].failed
    with pytest.raises(WorkerFailed):
        await workers[0].call(lambda: None)
    assert workers[1].failed is None
    assert (await _generate(workers[1], "fine"))[-1].completion_tokens == 4


async def test_a_failing_sink_costs_only_its_own_request(workers, neuron_models):
    """One step's outputs reach the event loop together: a sink that raises must not keep
    the others' outputs from them."""
    await _attach(workers[0], neuron_models)
    calls = 0

    def broken(_out) -> None:
        nonlocal calls
        calls += 1
        raise RuntimeError("a client's sink broke")

    params = SamplingParams(max_tokens=4, temperature=0, ignore_eos=True)
    await workers[0].submit("tiny-llama", EngineRequest("broken", [4, 5, 6], params), broken)
    # Decoded beside "broken", step by step; a lost output would leave it waiting.
    outputs = await asyncio.wait_for(_generate(workers[0], "fine"), timeout=60)
    assert outputs[-1].finished and outputs[-1].completion_tokens == 4
    assert calls >= 1

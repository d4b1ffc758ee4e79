"""One OS thread per device, alive for the daemon's life.

Every load, forward pass, KV reset, memory query and unload on a device runs on
its thread, so tensors and CUDA contexts never cross threads and nothing on the
asyncio loop ever waits on a kernel. Between jobs the thread steps each engine
that has work and hands every output to its request's sink on the event loop.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import queue
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import psutil
import torch

from neuron import devices
from neuron.devices import Device

if TYPE_CHECKING:
    from neuron.engine.engine import Engine
    from neuron.engine.records import EngineRequest, EngineStats, RequestOutput

log = logging.getLogger(__name__)

T = TypeVar("T")
# Receives each RequestOutput, or the exception that ended the request.
Sink = Callable[["RequestOutput | BaseException"], None]

_REFRESH_SECONDS = 1.0
_STOP = object()


class WorkerFailed(RuntimeError):
    """The device worker hit an error it cannot recover from; its models are gone."""


def _resolve(fut: asyncio.Future, result: Any, error: BaseException | None) -> None:
    if fut.done():
        return
    if error is not None:
        fut.set_exception(error)
    else:
        fut.set_result(result)


def _feed(ready: list[tuple[Sink, RequestOutput]]) -> None:
    """One step's outputs, on the event loop: a failing sink costs only its own request."""
    for sink, out in ready:
        try:
            sink(out)
        except Exception:
            log.exception("delivering %s's output failed", out.request_id)


def cpu_threads() -> int:
    """OMP_NUM_THREADS when set, else the physical cores this process may run on:
    hyperthreads slow matmuls down, and a cgroup/affinity limit must be respected."""
    env = os.environ.get("OMP_NUM_THREADS", "")
    if env.isdigit() and int(env) > 0:
        return int(env)
    allowed = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    physical = psutil.cpu_count(logical=False) or allowed or 1
    return max(1, min(allowed or 1, physical))


class DeviceWorker:
    """A device's thread, its job queue and the engines it owns."""

    def __init__(self, device: Device, loop: asyncio.AbstractEventLoop) -> None:
        self.device = device
        self.name = f"cuda-dev-{device.index}" if device.kind == "cuda" else f"cpu-{device.index}"
        self.failed: str | None = None
        self.stats: dict[str, EngineStats] = {}  # by model id, replaced whole after each step
        self._loop = loop
        self._jobs: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._engines: dict[str, Engine] = {}
        self._sinks: dict[str, tuple[str, Sink]] = {}
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._last_refresh = 0.0

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        self._jobs.put(_STOP)
        self._thread.join(timeout)

    # --- asyncio side -------------------------------------------------------------

    def call(self, fn: Callable[[], T]) -> asyncio.Future[T]:
        """Run fn on the device thread; the future resolves on the event loop."""
        fut: asyncio.Future[T] = self._loop.create_future()
        self._jobs.put((fn, fut))
        return fut

    def attach(
        self, model_id: str, make_engine: Callable[[], tuple[Engine, T]]
    ) -> asyncio.Future[T]:
        """Build (engine, facts) on the thread, start stepping the engine; resolves to facts.

        Only the plain facts come back: the engine and its tensors stay on the thread.
        """

        def job() -> T:
            engine, facts = make_engine()
            self._engines[model_id] = engine
            self._publish()
            return facts

        return self.call(job)

    def detach(self, model_id: str) -> asyncio.Future[None]:
        """Abort what the model still runs, drop its engine and free device memory."""

        def job() -> None:
            engine = self._engines.pop(model_id, None)
            for rid, (mid, sink) in list(self._sinks.items()):
                if mid == model_id:
                    del self._sinks[rid]
                    self._deliver(sink, WorkerFailed(f"model {model_id} was unloaded"))
            del engine
            gc.collect()  # the decoder's module graph has cycles; free its tensors now
            if self.device.kind == "cuda":
                torch.cuda.empty_cache()
            self._publish()

        return self.call(job)

    def submit(self, model_id: str, request: EngineRequest, sink: Sink) -> asyncio.Future[None]:
        """Queue a EngineRequest; the future fails (ValueError) if the engine refuses it."""

        def job() -> None:
            engine = self._engines.get(model_id)
            if engine is None:
                raise WorkerFailed(f"model {model_id} is not loaded on {self.device.id}")
            engine.add(request)
            self._sinks[request.request_id] = (model_id, sink)
            self._publish()

        return self.call(job)

    def abort(self, model_id: str, request_id: str) -> None:
        """Cancel a request (fire and forget): its blocks return to the pool."""

        def job() -> None:
            if self._sinks.pop(request_id, None) is not None:
                engine = self._engines.get(model_id)
                if engine is not None:
                    engine.abort(request_id)
                    self._publish()

        self._jobs.put((job, None))

    # --- device thread ------------------------------------------------------------

    def _run(self) -> None:
        if self.device.kind == "cuda":
            torch.cuda.set_device(self.device.index)
        else:
            torch.set_num_threads(cpu_threads())
        try:
            while self._loop_once():
                pass
        except BaseException as exc:  # isolate the failure to this device
            log.exception("worker %s failed", self.name)
            self._fail(exc)

    def _loop_once(self) -> bool:
        busy = any(engine.has_work() for engine in self._engines.values())
        try:
            job = self._jobs.get(block=not busy, timeout=None if busy else _REFRESH_SECONDS)
        except queue.Empty:
            job = None
        while job is not None:
            if job is _STOP:
                return False
            self._execute(*job)
            try:
                job = self._jobs.get_nowait()
            except queue.Empty:
                job = None
        if busy:
            self._step()
        now = time.monotonic()
        if now - self._last_refresh >= _REFRESH_SECONDS:
            self._last_refresh = now
            devices.refresh(self.device)
            self._publish()  # what changes off the steps too (the CPU compile's state)
        return True

    def _execute(self, fn: Callable[[], Any], fut: asyncio.Future | None) -> None:
        try:
            result, error = fn(), None
        except Exception as exc:  # the caller gets it
            result, error = None, exc
        if fut is not None:
            self._loop.call_soon_threadsafe(_resolve, fut, result, error)
        elif error is not None:
            log.warning("job on %s failed: %s", self.name, error)

    def _step(self) -> None:
        ready: list[tuple[Sink, RequestOutput]] = []
        for engine in list(self._engines.values()):
            if not engine.has_work():
                continue
            for out in engine.step():
                entry = self._sinks.get(out.request_id)
                if entry is None:
                    continue
                if out.finished:
                    del self._sinks[out.request_id]
                ready.append((entry[1], out))
        self._publish()  # before the outputs: a client that got its answer sees it counted
        if ready:  # one wake-up of the event loop a step, not one per stream (measured: the
            # self-pipe writes were 2.3% of the device thread's time at 16 streams)
            self._loop.call_soon_threadsafe(_feed, ready)

    def _publish(self) -> None:
        self.stats = {mid: engine.stats() for mid, engine in self._engines.items()}

    def _deliver(self, sink: Sink, item: RequestOutput | BaseException) -> None:
        self._loop.call_soon_threadsafe(sink, item)

    def _fail(self, exc: BaseException) -> None:
        """Fail every pending request and, until stopped, every job that still arrives."""
        self.failed = f"{type(exc).__name__}: {exc}"
        error = WorkerFailed(f"worker {self.name} failed: {self.failed}")
        for _mid, sink in self._sinks.values():
            self._deliver(sink, error)
        self._sinks.clear()
        self._engines.clear()
        self.stats = {}
        while (job := self._jobs.get()) is not _STOP:
            fut = job[1]
            if fut is not None:
                self._loop.call_soon_threadsafe(_resolve, fut, None, error)

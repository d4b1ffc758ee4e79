"""Loaded-model bookkeeping on the asyncio side: which model lives on which worker,
its status, in-flight count and admission, with single-flight loads and draining unloads.

Nothing here touches tensors: a load runs on the device worker, which hands back
only plain facts (tokenizer, template, sizes) so that dropping the engine on the
worker really frees the memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field
from typing import Any, Literal

from cortex.common.wire import ApiError
from neuron.config import NeuronConfig
from neuron.engine.factory import ModelFacts, build_engine
from neuron.metrics import NeuronMetrics
from neuron.models.confine import check_model_id, resolve_confined, scrub_paths
from neuron.models.errors import ModelLoadError
from neuron.worker import DeviceWorker, WorkerFailed

log = logging.getLogger(__name__)

# A model on this neuron, as GET /models reports it.
ModelStatus = Literal["loading", "ready", "failed"]
_LOAD_STATUS = {"not_found": 404, "unsupported": 400, "invalid": 400, "out_of_memory": 507}


@dataclass
class ModelEntry:
    id: str
    worker: DeviceWorker
    dtype: str
    status: ModelStatus = "loading"
    error: str | None = None
    facts: ModelFacts | None = None
    inflight: int = 0
    accepting: bool = True
    last_used: float = field(default_factory=time.time)
    loaded_at: float = field(default_factory=time.time)
    idle: asyncio.Event = field(default_factory=asyncio.Event)

    def public(self) -> dict[str, Any]:
        stats = self.worker.stats.get(self.id)
        out: dict[str, Any] = {
            "id": self.id,
            "devices": [self.worker.device.id],
            "status": self.status,
            "dtype": self.facts.dtype if self.facts else self.dtype,
            "weight_format": self.facts.weight_format if self.facts else None,
            "kv_cache_dtype": self.facts.kv_cache_dtype if self.facts else None,
            "memory_bytes": self.facts.memory_bytes if self.facts else 0,
            "context_length": self.facts.context_length if self.facts else None,
            "experts": self.facts.experts if self.facts else None,
            "active_experts": self.facts.active_experts if self.facts else None,
            "capabilities": self.facts.capabilities if self.facts else [],
            "pooling": self.facts.pooling.public() if self.facts else None,
            "embedding_dimensions": self.facts.hidden_size if self.facts else None,
            "running": stats.running if stats else 0,
            "waiting": stats.waiting if stats else 0,
            "inflight": self.inflight,
            "last_used": self.last_used,
            "loaded_at": self.loaded_at,
        }
        if stats is not None:
            out["kv_blocks"] = {
                "free": stats.free_blocks,
                "total": stats.total_blocks,
                "block_size": stats.block_size,
            }
            out["prefix_cache"] = {
                "enabled": stats.prefix_cache,
                "cached_blocks": stats.cached_blocks,
                "queried_tokens": stats.prefix_queried_tokens,
                "hit_tokens": stats.prefix_hit_tokens,
            }
            out["compiled_decode"] = stats.compiled_decode
        if self.error:
            out["error"] = self.error
        return out


class Registry:
    """Every model this daemon holds, keyed by the id it was loaded under."""

    def __init__(
        self, config: NeuronConfig, workers: list[DeviceWorker], metrics: NeuronMetrics
    ) -> None:
        self.config = config
        self.workers = {w.device.id: w for w in workers}
        self.metrics = metrics
        self.entries: dict[str, ModelEntry] = {}
        self._loads: dict[str, asyncio.Future[ModelEntry]] = {}

    # --- loading --------------------------------------------------------------

    async def load(
        self,
        model_id: str,
        devices: list[str] | None = None,
        dtype: str = "auto",
        max_context: int | None = None,
        prefix_cache: bool | None = None,
        pooling: str | None = None,
        gpu_quantization: str | None = None,
    ) -> ModelEntry:
        """Load model_id (or join the load already under way) and return it when ready."""
        try:
            check_model_id(model_id)
        except ModelLoadError as err:  # not echoed: the id may be a host path
            raise ApiError(400, err.message, param="model_id", code=err.kind) from None
        entry = self.entries.get(model_id)
        if entry is not None and entry.status == "ready":
            if devices and devices != [entry.worker.device.id]:
                raise ApiError(409, f"{model_id} is already loaded on {entry.worker.device.id}")
            return entry
        pending = self._loads.get(model_id)
        if pending is None:
            worker = self._pick_worker(devices)
            if prefix_cache is None:
                prefix_cache = self.config.prefix_cache
            quantization = gpu_quantization or self.config.gpu_quantization
            load = self._load(
                model_id, worker, dtype, max_context, prefix_cache, pooling, quantization
            )
            pending = asyncio.ensure_future(load)
            self._loads[model_id] = pending
            pending.add_done_callback(lambda _f: self._loads.pop(model_id, None))
        return await asyncio.shield(pending)

    def _pick_worker(self, devices: list[str] | None) -> DeviceWorker:
        if devices:
            if len(devices) != 1:
                raise ApiError(400, "a model runs on one device; give a single device id")
            worker = self.workers.get(devices[0])
            if worker is None:
                known = ", ".join(self.workers)
                raise ApiError(400, f"unknown device {devices[0]!r} (devices: {known})")
        else:
            usable = [w for w in self.workers.values() if w.failed is None]
            gpus = [w for w in usable if w.device.kind == "cuda"]
            if not usable:
                raise ApiError(503, "every device worker has failed", retry_after=30)
            worker = max(gpus or usable, key=lambda w: w.device.memory_free_bytes)
        if worker.failed is not None:
            raise ApiError(503, f"worker {worker.name} has failed: {worker.failed}")
        return worker

    async def _load(
        self,
        model_id: str,
        worker: DeviceWorker,
        dtype: str,
        max_context: int | None,
        prefix_cache: bool,
        pooling: str | None,
        gpu_quantization: str,
    ) -> ModelEntry:
        dtype = self.config.dtype_for(worker.device.kind, dtype)
        entry = ModelEntry(model_id, worker, dtype)
        entry.idle.set()
        self.entries[model_id] = entry
        started = time.monotonic()
        try:
            source = await asyncio.to_thread(resolve_confined, model_id, self.config)
            path = str(source.path)
            entry.facts = await worker.attach(
                model_id,
                lambda: build_engine(
                    self.config,
                    path,
                    worker.device,
                    dtype,
                    max_context,
                    prefix_cache,
                    pooling,
                    gpu_quantization,
                ),
            )
        except Exception as exc:
            self.entries.pop(model_id, None)
            log.warning("loading %s failed: %s", model_id, exc)
            error = _load_error(model_id, exc, self.config)
            self.metrics.load_failures.labels(error.code or "error").inc()
            raise error from exc
        entry.status = "ready"
        self.metrics.load_duration.labels(model_id).observe(time.monotonic() - started)
        log.info("loaded %s on %s in %.1fs", model_id, worker.device.id, time.monotonic() - started)
        return entry

    # --- admission ------------------------------------------------------------

    def get_ready(self, model_id: Any) -> ModelEntry:
        """The entry a generation request may use, or the error the client should see."""
        if not isinstance(model_id, str) or not model_id:
            raise ApiError(400, "`model` must be a non-empty string", param="model")
        entry = self.entries.get(model_id)
        if entry is None:
            loaded = ", ".join(sorted(self.entries)) or "none"
            raise ApiError(
                404,
                f"model {model_id!r} is not loaded on this neuron (loaded: {loaded}); "
                "load it with POST /models/load",
                param="model",
                code="model_not_found",
            )
        if entry.status == "loading":
            raise ApiError(503, f"model {model_id!r} is still loading", retry_after=5)
        if not entry.accepting:
            raise ApiError(503, f"model {model_id!r} is being unloaded", retry_after=5)
        if entry.worker.failed is not None:
            raise ApiError(503, f"device {entry.worker.device.id} failed: {entry.worker.failed}")
        capacity = self.config.max_batch_size + self.config.max_waiting
        if entry.inflight >= capacity:
            raise ApiError(
                503,
                f"model {model_id!r} has {entry.inflight} requests queued; try again later",
                retry_after=1,
            )
        return entry

    @staticmethod
    def begin(entry: ModelEntry) -> None:
        entry.inflight += 1
        entry.idle.clear()
        entry.last_used = time.time()

    @staticmethod
    def end(entry: ModelEntry) -> None:
        entry.inflight -= 1
        entry.last_used = time.time()
        if entry.inflight == 0:
            entry.idle.set()

    # --- unloading ------------------------------------------------------------

    async def unload(self, model_id: str, force: bool = False) -> None:
        """Stop admitting, let in-flight requests finish (or abort them), free the memory."""
        pending = self._loads.get(model_id)
        if pending is not None:
            with contextlib.suppress(ApiError):  # a failed load leaves nothing: 404 below
                await asyncio.shield(pending)
        entry = self.entries.get(model_id)
        if entry is None:
            raise ApiError(404, f"model {model_id!r} is not loaded", param="model_id")
        entry.accepting = False
        if not force:
            try:
                await asyncio.wait_for(entry.idle.wait(), self.config.drain_timeout_seconds)
            except asyncio.TimeoutError:
                log.warning("draining %s timed out; aborting what is left", model_id)
        with contextlib.suppress(WorkerFailed):  # a failed worker holds nothing any more
            await entry.worker.detach(model_id)
        if self.entries.get(model_id) is entry:
            del self.entries[model_id]
        log.info("unloaded %s", model_id)

    async def unload_all(self) -> None:
        await asyncio.gather(
            *(self.unload(mid) for mid in list(self.entries)), return_exceptions=True
        )

    def inflight(self) -> int:
        return sum(e.inflight for e in self.entries.values())


def _load_error(model_id: str, exc: Exception, config: NeuronConfig) -> ApiError:
    """The client's answer for a failed load: the model id, never a host path."""
    if isinstance(exc, ApiError):
        return exc
    if isinstance(exc, ModelLoadError):
        return ApiError(
            _LOAD_STATUS.get(exc.kind, 500),
            f"cannot load {model_id!r}: {scrub_paths(exc.message, config)}",
            param="model_id",
            code=exc.kind,
        )
    reason = scrub_paths(f"{type(exc).__name__}: {exc}", config)
    return ApiError(500, f"cannot load {model_id!r}: {reason}", param="model_id")

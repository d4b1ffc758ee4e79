"""Compile registry variants for real cards, each distinct cubin once.

Found in Triton's cache, a compile takes milliseconds, so this process goes through
the jobs itself until one misses the cache (takes longer than ``MISS_S``; the first
also loads Triton's backend, so it does not count). LLVM and
ptxas run single-threaded, and a cold cache means about a hundred compiles, so the
rest then go to two worker processes, which halves the wall time on two cores.
Workers are spawned (not forked: the parent may hold threads) and rebuild the
registry themselves."""

from __future__ import annotations

import functools
import multiprocessing
import os
import time
import warnings
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor

from tests.kernels import aot
from tests.kernels.variants import Variant, variants

Job = tuple[int, int]  # (index in variants(), arch)
MISS_S = 0.2


@functools.cache
def _registry() -> list[Variant]:
    return variants()


def _quiet() -> None:
    warnings.filterwarnings("ignore", message="TRITON_DEFAULT_FP_FUSION")


def _compile(job: Job) -> tuple[Job, aot.Resources | str]:
    """Resources, or the compile error as text (Triton's exceptions need not pickle)."""
    index, arch = job
    try:
        return job, aot.resources(aot.compile_for(_registry()[index].launch, arch))
    except Exception as exc:  # reported per variant by the caller
        return job, f"{type(exc).__name__}: {exc}"


def compile_jobs(jobs: Sequence[Job], workers: int = 2) -> dict[Job, aot.Resources | str]:
    """Every job's outcome; jobs that build the same cubin share one compile."""
    registry = _registry()
    first: dict[tuple, Job] = {}
    key_of = {}
    for index, arch in jobs:
        key = aot.cache_key(registry[index].launch, arch)
        key_of[index, arch] = key
        first.setdefault(key, (index, arch))
    todo = list(first.values())
    done = {}
    while todo:
        began = time.monotonic()
        job, result = _compile(todo.pop(0))
        done[job] = result
        if len(done) > 1 and time.monotonic() - began > MISS_S:
            break
    if todo:
        workers = max(1, min(workers, os.cpu_count() or 1, len(todo)))
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(workers, mp_context=context, initializer=_quiet) as pool:
            done.update(pool.map(_compile, todo))
    return {job: done[first[key_of[job]]] for job in jobs}

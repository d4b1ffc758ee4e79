"""Fixtures for the kernel tests: the interpreter worker and the GPU runner."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from tests.kernels.runners import InterpreterWorker, needs_cuda, run_on_gpu


@pytest.fixture(scope="session")
def interpreter() -> Iterator[InterpreterWorker]:
    pytest.importorskip("triton")
    worker = InterpreterWorker()
    yield worker
    worker.close()


@pytest.fixture(params=["interpreter", pytest.param("cuda", marks=[pytest.mark.cuda, needs_cuda])])
def triton_run(request: pytest.FixtureRequest) -> Callable[..., None]:
    """Run a ``triton_checks`` check on CPU in the interpreter, or on the GPU."""
    if request.param == "cuda":
        return run_on_gpu
    return request.getfixturevalue("interpreter").run

"""How Triton checks are run: in an interpreter child process, or on the GPU."""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
REPLY_TIMEOUT_S = 300  # a hung kernel fails the run instead of stalling it


class InterpreterWorker:
    """A child process (see ``interp_worker``) that runs named checks."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.kernels.interp_worker"],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, "TRITON_INTERPRET": "1"},
        )
        self._reply()

    def _reply(self) -> dict:
        assert self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], REPLY_TIMEOUT_S)
        if not ready:
            self.proc.kill()
            raise RuntimeError(f"interpreter worker gave no answer in {REPLY_TIMEOUT_S} s")
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"interpreter worker exited with {self.proc.wait()}")
        return json.loads(line)

    def run(self, check: str, **kwargs: object) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps({"check": check, "kwargs": kwargs}) + "\n")
        self.proc.stdin.flush()
        reply = self._reply()
        if not reply["ok"]:
            pytest.fail(f"{check}({kwargs}) failed in the interpreter:\n{reply['error']}")

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def run_on_gpu(check: str, **kwargs: object) -> None:
    from tests.kernels import triton_checks

    getattr(triton_checks, check)(device="cuda", **kwargs)


needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs an NVIDIA GPU")

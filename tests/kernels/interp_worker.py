"""Child process running Triton kernels under the CPU interpreter.

Triton decides when it is *imported* (its own library) and when a kernel is
*decorated* whether to interpret, so the variable must be set before either;
in a shared pytest process something may already have imported Triton for real.
A child started for the purpose sidesteps that.  Protocol: one JSON request per
line on stdin ``{"check": name, "kwargs": {...}}``, one JSON reply per line on
the original stdout ``{"ok": bool, "error": traceback}``; prints go to stderr."""

from __future__ import annotations

import json
import os
import sys
import traceback

# Before anything imports Triton (the checks import it in main()).
os.environ["TRITON_INTERPRET"] = "1"


def main() -> None:
    replies = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    from tests.kernels import triton_checks

    replies.write(json.dumps({"ready": True}) + "\n")
    for line in sys.stdin:
        request = json.loads(line)
        try:
            getattr(triton_checks, request["check"])(**request["kwargs"])
            reply = {"ok": True}
        except BaseException:
            reply = {"ok": False, "error": traceback.format_exc()}
        replies.write(json.dumps(reply) + "\n")


if __name__ == "__main__":
    main()

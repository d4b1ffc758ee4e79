"""The command line of a bench script whose only option is how many runs to take."""

from __future__ import annotations

import argparse
from collections.abc import Callable


def runs_main(doc: str | None, run: Callable[[int], object], default: int) -> None:
    """Parse `--runs` (description: the script's docstring's first line) and run."""
    parser = argparse.ArgumentParser(description=(doc or "").splitlines()[0])
    parser.add_argument("--runs", type=int, default=default)
    run(parser.parse_args().runs)

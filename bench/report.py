"""Benchmark results: one JSON file and one Markdown table per run of `python -m bench`.

Every figure keeps all its runs, so the report shows the median and the spread
(min–max), side by side with its baseline measured in the same run.
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import socket
import statistics
import subprocess
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path

RESULTS_DIR = Path(__file__).resolve().parent / "results"
VERSIONED = ("cortex-fleet", "torch", "triton", "transformers", "aiohttp")


@dataclass
class Figure:
    """One measured quantity: our runs and, where there is one, the baseline's runs."""

    suite: str
    name: str
    unit: str
    ours: list[float]
    baseline_name: str | None = None
    baseline: list[float] = field(default_factory=list)

    def cell(self, runs: list[float]) -> str:
        if not runs:
            return "–"
        return f"{_fmt(statistics.median(runs))} ({_fmt(min(runs))}–{_fmt(max(runs))})"

    @property
    def ratio(self) -> float | None:
        """Ours over the baseline, medians; None without a baseline."""
        if not self.baseline or not self.ours or statistics.median(self.baseline) == 0:
            return None
        return statistics.median(self.ours) / statistics.median(self.baseline)


def _fmt(value: float) -> str:
    return f"{value:.3g}" if abs(value) < 100 else f"{value:.0f}"


def cpu_model() -> str:
    """lscpu's model name (platform.processor() is often empty on Linux)."""
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return platform.processor() or "unknown"
    for line in out.splitlines():
        if line.startswith("Model name:"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def machine() -> dict[str, object]:
    facts: dict[str, object] = {
        "host": socket.gethostname(),
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
    }
    try:
        import torch

        if torch.cuda.is_available():
            facts["gpu"] = torch.cuda.get_device_name(0)
    except ImportError:
        pass
    facts["gpu"] = facts.get("gpu", "none")
    return facts


def versions() -> dict[str, str]:
    found = {}
    for name in VERSIONED:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "not installed"
    return found


def markdown(facts: dict[str, object], vers: dict[str, str], figures: list[Figure]) -> str:
    lines = [
        f"Machine: {facts['cpu']}, {facts['cores']} cores, GPU: {facts['gpu']} "
        f"({facts['os']}, Python {facts['python']}).",
        "Versions: " + ", ".join(f"{k} {v}" for k, v in vers.items()) + ".",
        "",
        "Each cell: median (min–max) over the runs; the baseline ran in the same run.",
        "",
        "| suite | figure | unit | ours | baseline | baseline figure | ours ÷ baseline |",
        "|---|---|---|---|---|---|---|",
    ]
    for f in figures:
        ratio = "–" if f.ratio is None else f"{f.ratio:.2f}"
        lines.append(
            f"| {f.suite} | {f.name} | {f.unit} | {f.cell(f.ours)} "
            f"| {f.baseline_name or '–'} | {f.cell(f.baseline)} | {ratio} |"
        )
    return "\n".join(lines) + "\n"


def write(figures: list[Figure], notes: list[str], out_dir: Path = RESULTS_DIR) -> Path:
    """Write <date>-<host>.json and .md beside it; returns the JSON path."""
    facts, vers = machine(), versions()
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = f"{datetime.date.today().isoformat()}-{facts['host']}"
    payload = {
        "machine": facts,
        "versions": vers,
        "figures": [asdict(f) for f in figures],
        "notes": notes,
    }
    path = out_dir / f"{stem}.json"
    path.write_text(json.dumps(payload, indent=2) + "\n")
    table = markdown(facts, vers, figures)
    if notes:
        table += "\n" + "\n".join(f"- {n}" for n in notes) + "\n"
    (out_dir / f"{stem}.md").write_text(table)
    return path

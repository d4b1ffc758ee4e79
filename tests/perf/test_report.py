"""The benchmark report: figures keep every run and are written as JSON and Markdown."""

from __future__ import annotations

import json
from pathlib import Path

from bench.report import Figure, write


def test_report_shows_median_spread_and_baseline(tmp_path: Path) -> None:
    figures = [
        Figure("engine", "decode", "tok/s", [10.0, 12.0, 11.0], "transformers", [5.0, 6.0, 4.0]),
        Figure("neuron", "1 stream", "tok/s", [3.0, 2.0, 4.0]),
    ]
    path = write(figures, ["a note"], out_dir=tmp_path)
    assert path.parent == tmp_path and path.suffix == ".json"
    data = json.loads(path.read_text())
    assert data["figures"][0]["ours"] == [10.0, 12.0, 11.0]
    assert data["machine"]["cores"] >= 1 and data["machine"]["cpu"]
    assert "torch" in data["versions"]
    table = path.with_suffix(".md").read_text()
    assert "| engine | decode | tok/s | 11 (10–12) | transformers | 5 (4–6) | 2.20 |" in table
    assert "| neuron | 1 stream | tok/s | 3 (2–4) | – | – | – |" in table
    assert "- a note" in table and f"{data['machine']['cores']} cores" in table

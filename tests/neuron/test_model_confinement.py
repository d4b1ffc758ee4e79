"""POST /models/load only reaches models inside models_dir, the HF cache and
allowed_model_roots: every way out is a 400 that opens nothing there and names no
host path, and "exists" cannot be told from "missing" outside the roots."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.support.daemons import start_neuron
from tests.support.watch import OpenWatch


@pytest.fixture(scope="module")
def jail(tmp_path_factory, tiny_llama: Path):
    """A neuron whose roots are base/models and base/extra, and what lies beside them."""
    base = tmp_path_factory.mktemp("jail")
    models, extra, outside = base / "models", base / "extra", base / "elsewhere"
    for folder in (models, extra, outside):
        folder.mkdir()
    shutil.copytree(tiny_llama, extra / "extra-llama")
    shutil.copytree(tiny_llama, outside / "hfmodel")  # a loadable model, out of bounds
    (outside / "evil.gguf").write_bytes(b"GGUF" + bytes(64))
    (models / "link.gguf").symlink_to(outside / "evil.gguf")
    (models / "linked").symlink_to(outside / "hfmodel", target_is_directory=True)
    proc = start_neuron(
        base / "daemon", models, [], hf_cache=base / "hub", allowed_model_roots=[str(extra)]
    )
    yield proc, base, outside
    proc.stop()


def _refusals(outside: Path) -> dict[str, str]:
    return {
        "absolute file": str(outside / "evil.gguf"),
        "absolute folder with config.json": str(outside / "hfmodel"),
        "parent": "../elsewhere/evil.gguf",
        "parent folder": "../elsewhere/hfmodel",
        "parent inside an id": "org/../../elsewhere/hfmodel",
        "parent with a quant": "../elsewhere:Q4_0",
        "symlink to a file out": "link.gguf",
        "symlink to a folder out": "linked",
        "directory probe": "/etc",
        "home": "~root/models",
    }


def test_every_way_out_is_refused_unopened_and_pathless(jail):
    proc, base, outside = jail
    watch = OpenWatch(outside, outside / "hfmodel")
    try:
        for case, model_id in _refusals(outside).items():
            status, body, _ = proc.post("/models/load", {"model_id": model_id})
            text = json.dumps(body)
            assert status == 400, (case, body)
            assert body["error"]["param"] == "model_id", case
            assert str(base) not in text and "elsewhere" not in text, (case, text)
        listing = proc.get_json("/models")
        assert str(base) not in json.dumps(listing)
        listed = {model["id"] for model in listing["available"]}
        assert "extra-llama" in listed and not listed & {"link.gguf", "linked"}
        assert watch.opened() == []
    finally:
        watch.close()


def test_outside_the_roots_existing_and_missing_read_the_same(jail):
    proc, _base, outside = jail
    answers = {
        json.dumps(proc.post("/models/load", {"model_id": model_id}).body)
        for model_id in ("/etc", "/no/such/dir", str(outside / "hfmodel"), "../nothing-here")
    }
    assert len(answers) == 1, answers


def test_missing_inside_the_roots_names_the_id_only(jail):
    proc, base, _outside = jail
    status, body, _ = proc.post("/models/load", {"model_id": "acme/absent"})
    assert status == 404 and "acme/absent" in body["error"]["message"]
    assert str(base) not in json.dumps(body)


def test_an_allowed_root_loads(jail):
    proc, _base, _outside = jail
    status, body, _ = proc.post("/models/load", {"model_id": "extra-llama"})
    assert status == 200 and body["status"] == "ready", body

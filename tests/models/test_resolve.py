"""Finding models in models_dir and the Hugging Face cache layout, offline."""

from __future__ import annotations

from pathlib import Path

import pytest

from neuron.models.errors import ModelLoadError
from neuron.models.resolve import list_local_models, quant_of, resolve_model


def touch(path: Path, text: str = "{}") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


@pytest.fixture
def layout(tmp_path: Path) -> tuple[Path, Path]:
    models, hub = tmp_path / "models", tmp_path / "hub"
    touch(models / "acme" / "tiny" / "config.json")
    touch(models / "solo" / "config.json")
    for quant in ("Q4_K_M", "Q4_K", "Q8_0"):
        touch(models / "acme" / "small-GGUF" / f"small.{quant}.gguf")
    touch(models / "loose.Q4_0.gguf")
    repo = hub / "models--org--cached"
    touch(repo / "snapshots" / "old" / "config.json")
    touch(repo / "snapshots" / "abc123" / "config.json")
    touch(repo / "refs" / "main", "abc123")
    touch(hub / "models--org--cached-GGUF" / "snapshots" / "r1" / "cached-Q6_K.gguf")
    return models, hub


def test_repo_ids_in_models_dir_and_cache(layout):
    models, hub = layout
    found = resolve_model("acme/tiny", models, hub)
    assert (found.format, found.path) == ("hf", models / "acme" / "tiny")
    assert resolve_model("someone/solo", models, hub).path == models / "solo"
    cached = resolve_model("org/cached", models, hub)
    assert cached.path == hub / "models--org--cached" / "snapshots" / "abc123"


def test_gguf_by_quant_case_insensitive_and_exact_first(layout):
    models, hub = layout
    assert resolve_model("acme/small-GGUF:q8_0", models, hub).path.name == "small.Q8_0.gguf"
    assert resolve_model("acme/small-GGUF:Q4_K", models, hub).path.name == "small.Q4_K.gguf"
    assert resolve_model("acme/small-GGUF:Q4_K_M", models, hub).path.name == "small.Q4_K_M.gguf"
    cached = resolve_model("org/cached-GGUF:Q6_K", models, hub)
    assert (cached.format, cached.path.name) == ("gguf", "cached-Q6_K.gguf")


def test_gguf_by_path(layout):
    models, hub = layout
    direct = resolve_model(str(models / "loose.Q4_0.gguf"), None, hub)
    assert direct.format == "gguf"
    assert resolve_model("loose.Q4_0.gguf", models, hub).path == models / "loose.Q4_0.gguf"


def test_environment_locates_the_cache(layout, monkeypatch):
    models, hub = layout
    monkeypatch.setenv("HF_HUB_CACHE", str(hub))
    assert resolve_model("org/cached", models).path.name == "abc123"
    monkeypatch.delenv("HF_HUB_CACHE")
    home = hub.parent / "hf-home"
    home.mkdir()
    hub.rename(home / "hub")
    monkeypatch.setenv("HF_HOME", str(home))
    assert resolve_model("org/cached", models).path.name == "abc123"


def test_not_found_is_a_clear_error(layout):
    models, hub = layout
    with pytest.raises(ModelLoadError) as err:
        resolve_model("acme/missing", models, hub)
    assert err.value.kind == "not_found"
    assert "acme/missing" in str(err.value)
    assert str(models) not in str(err.value) and str(hub) not in str(err.value)
    with pytest.raises(ModelLoadError, match="not found"):
        resolve_model("acme/small-GGUF:Q2_K", models, hub)


def test_listing_uses_ids_that_resolve(layout):
    models, hub = layout
    listed = {m.id: m for m in list_local_models(models, hub)}
    assert set(listed) == {
        "loose.Q4_0.gguf",
        "solo",
        "acme/tiny",
        "acme/small-GGUF:Q4_K",
        "acme/small-GGUF:Q4_K_M",
        "acme/small-GGUF:Q8_0",
        "org/cached",
        "org/cached-GGUF:Q6_K",
    }
    for model_id, entry in listed.items():
        assert resolve_model(model_id, models, hub).path == entry.path


def test_quant_of_file_names():
    assert quant_of(Path("SmolLM2-135M-Instruct.Q4_1.gguf")) == "Q4_1"
    assert quant_of(Path("model-iq4_xs.gguf")) == "IQ4_XS"
    assert quant_of(Path("model-bf16.gguf")) == "BF16"
    assert quant_of(Path("model.gguf")) is None

"""Find a model on local disk by repo id, GGUF quant or path; list what is available.

Places searched, in order: an absolute path (for trusted callers: the daemon
confines ids first, see neuron.models.confine), `models_dir/<org>/<name>`,
`models_dir/<name>`, then the Hugging Face hub cache
(`models--<org>--<name>/snapshots/<rev>/`). A GGUF is addressed as
`<repo id>:<QUANT>` (the file whose name contains the quant) or by its path.
The network is touched only when the caller allows downloads.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from neuron.models.errors import ModelLoadError

Format = Literal["hf", "gguf"]
_QUANT_RE = re.compile(r"(?i)(?<![a-z0-9])(i?q\d[a-z0-9_]*|bf16|f16|f32)(?=\.gguf$)")


@dataclass(frozen=True)
class ModelSource:
    """Where a model's files are: a folder (hf) or a single file (gguf)."""

    model_id: str
    format: Format
    path: Path


@dataclass(frozen=True)
class AvailableModel:
    id: str
    format: Format
    path: Path
    size_bytes: int


def hub_cache_dir(hf_cache: Path | None = None) -> Path:
    """The hub cache: explicit, else $HF_HUB_CACHE, else $HF_HOME/hub, else ~/.cache."""
    if hf_cache is not None:
        return Path(hf_cache)
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"])
    home = os.environ.get("HF_HOME") or Path.home() / ".cache" / "huggingface"
    return Path(home) / "hub"


def _snapshot(repo_dir: Path) -> Path | None:
    """The snapshot refs/main points at, else the newest one."""
    snapshots = repo_dir / "snapshots"
    ref = repo_dir / "refs" / "main"
    if ref.is_file() and (snapshots / ref.read_text().strip()).is_dir():
        return snapshots / ref.read_text().strip()
    revs = (
        sorted(snapshots.iterdir(), key=lambda p: p.stat().st_mtime) if snapshots.is_dir() else []
    )
    return revs[-1] if revs else None


def _candidate_dirs(repo_id: str, models_dir: Path | None, hf_cache: Path | None) -> list[Path]:
    dirs: list[Path] = []
    if models_dir is not None:
        dirs += [models_dir / repo_id, models_dir / repo_id.split("/")[-1]]
    snapshot = _snapshot(hub_cache_dir(hf_cache) / ("models--" + repo_id.replace("/", "--")))
    if snapshot is not None:
        dirs.append(snapshot)
    return [d for d in dirs if d.is_dir()]


def _pick_gguf(folder: Path, quant: str | None) -> Path | None:
    files = sorted(f for f in folder.glob("*.gguf") if f.is_file())
    if quant is None:
        return files[0] if len(files) == 1 else None
    wanted = quant.lower()
    matches = [f for f in files if wanted in f.name.lower()]
    # "Q4_K" should pick model.Q4_K.gguf over model.Q4_K_M.gguf when both exist.
    exact = [f for f in matches if (q := quant_of(f)) and q.lower() == wanted]
    return (exact or matches or [None])[0]


def quant_of(file: Path) -> str | None:
    """The quant named in a GGUF file name (`...Q4_K_M.gguf` → "Q4_K_M")."""
    match = _QUANT_RE.search(file.name)
    return match.group(1).upper() if match else None


def resolve_model(
    spec: str,
    models_dir: Path | None = None,
    hf_cache: Path | None = None,
    allow_download: bool = False,
) -> ModelSource:
    """Locate `spec` (repo id, `repo:QUANT`, or a path) or raise ModelLoadError("not_found")."""
    models_dir = Path(models_dir) if models_dir is not None else None
    direct = [Path(spec)] if Path(spec).is_absolute() else []
    for path in (*direct, *([models_dir / spec] if models_dir else [])):
        if path.is_file() and path.suffix == ".gguf":
            return ModelSource(spec, "gguf", path)
        if path.is_dir() and (path / "config.json").is_file():
            return ModelSource(spec, "hf", path)
        if path.is_dir() and ":" not in spec and not list(path.glob("*.gguf")):
            raise ModelLoadError("invalid", f"model folder {spec!r} has no config.json")
    repo_id, _, quant = spec.partition(":")
    for folder in _candidate_dirs(repo_id, models_dir, hf_cache):
        if not quant and (folder / "config.json").is_file():
            return ModelSource(spec, "hf", folder)
        gguf_file = _pick_gguf(folder, quant or None)
        if gguf_file is not None:
            return ModelSource(spec, "gguf", gguf_file)
    if allow_download:
        return _download(spec, repo_id, quant or None, hf_cache)
    raise ModelLoadError("not_found", not_found_message(spec, allow_download))


def not_found_message(spec: str, allow_download: bool = False) -> str:
    """The one answer for a model that is not here: it names the id, never a folder."""
    tail = "" if allow_download else " (downloads are disabled)"
    return f"model {spec!r} not found in this neuron's model folders or Hugging Face cache{tail}"


def _download(spec: str, repo_id: str, quant: str | None, hf_cache: Path | None) -> ModelSource:
    """Fetch from the Hugging Face hub into its cache (huggingface_hub is optional)."""
    try:
        import huggingface_hub as hub
        from huggingface_hub.errors import HfHubHTTPError
    except ImportError as exc:
        raise ModelLoadError(
            "not_found", f"model {spec!r} is not local and huggingface_hub is not installed"
        ) from exc
    cache = str(hub_cache_dir(hf_cache))
    try:
        if quant is None:
            patterns = ["*.json", "*.safetensors", "*.jinja", "tokenizer*"]
            folder = hub.snapshot_download(repo_id, cache_dir=cache, allow_patterns=patterns)
            return ModelSource(spec, "hf", Path(folder))
        names = [n for n in hub.list_repo_files(repo_id) if n.endswith(".gguf")]
        chosen = [n for n in names if quant.lower() in n.lower()]
        if not chosen:
            raise ModelLoadError("not_found", f"{repo_id} has no GGUF file for quant {quant}")
        return ModelSource(
            spec, "gguf", Path(hub.hf_hub_download(repo_id, chosen[0], cache_dir=cache))
        )
    except (OSError, ValueError, HfHubHTTPError) as exc:
        raise ModelLoadError("not_found", f"could not download {spec!r}: {exc}") from exc


def _size(paths: list[Path]) -> int:
    return sum(p.stat().st_size for p in paths if p.exists())


def _folder_models(model_id: str, folder: Path) -> list[AvailableModel]:
    found = []
    if (folder / "config.json").is_file():
        found.append(
            AvailableModel(model_id, "hf", folder, _size(list(folder.glob("*.safetensors"))))
        )
    for file in sorted(folder.glob("*.gguf")):
        quant = quant_of(file) or file.stem
        found.append(AvailableModel(f"{model_id}:{quant}", "gguf", file, _size([file])))
    return found


def list_local_models(
    models_dir: Path | None, hf_cache: Path | None = None
) -> list[AvailableModel]:
    """Every model `resolve_model` could find without downloading."""
    models_dir = Path(models_dir) if models_dir is not None else None
    found: list[AvailableModel] = []
    if models_dir is not None and models_dir.is_dir():
        for file in sorted(models_dir.glob("*.gguf")):
            found.append(AvailableModel(file.name, "gguf", file, _size([file])))
        for first in sorted(p for p in models_dir.iterdir() if p.is_dir()):
            found += _folder_models(first.name, first)
            for second in sorted(p for p in first.iterdir() if p.is_dir()):
                found += _folder_models(f"{first.name}/{second.name}", second)
    cache = hub_cache_dir(hf_cache)
    if cache.is_dir():
        for repo_dir in sorted(cache.glob("models--*")):
            snapshot = _snapshot(repo_dir)
            if snapshot is not None:
                repo_id = repo_dir.name.removeprefix("models--").replace("--", "/")
                found += _folder_models(repo_id, snapshot)
    return found

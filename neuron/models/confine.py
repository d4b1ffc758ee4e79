"""Which models a client may make the daemon load: names inside its model roots only.

The roots are `models_dir`, the Hugging Face cache and `allowed_model_roots`. An id
that is an absolute path or has `.`/`..`/empty parts is refused before anything on
disk is looked at, so nothing outside the roots is opened or even probed, and no
answer tells "exists" from "missing" there. A model found inside a root must also stay
inside one once symlinks are followed (the file, or the folder and every entry in it).
Messages name the model id, never a host path (`scrub_paths` for the loader's own).
"""

from __future__ import annotations

import re
from pathlib import Path

from neuron.config import NeuronConfig
from neuron.models.errors import ModelLoadError
from neuron.models.resolve import ModelSource, hub_cache_dir, resolve_model

REFUSED = (
    "`model_id` must name a model inside this neuron's model folders "
    "(absolute paths and '.' or '..' parts are refused)"
)


def model_roots(config: NeuronConfig) -> list[Path]:
    return [config.models_dir, hub_cache_dir(config.hf_cache), *config.allowed_model_roots]


def check_model_id(spec: str) -> None:
    """Refuse, without touching the disk, any id that could point outside the roots."""
    parts = spec.split(":", 1)[0].replace("\\", "/").split("/")
    if (
        not spec
        or "\0" in spec
        or spec.startswith(("/", "\\", "~"))
        or re.match(r"^[A-Za-z]:[\\/]", spec)
        or any(part in ("", ".", "..") for part in parts)
    ):
        raise ModelLoadError("invalid", REFUSED)


def resolve_confined(spec: str, config: NeuronConfig) -> ModelSource:
    """Find `spec` in the roots (downloading only as a last resort, when allowed)."""
    check_model_id(spec)
    folders = [config.models_dir, *config.allowed_model_roots]
    for i, folder in enumerate(folders):
        last = i == len(folders) - 1
        try:
            source = resolve_model(
                spec, folder, config.hf_cache, allow_download=last and config.allow_download
            )
            break
        except ModelLoadError as err:
            if err.kind != "not_found" or last:
                raise
    if not _inside(source, model_roots(config)):
        raise ModelLoadError("invalid", f"model {spec!r} links outside this neuron's model folders")
    return source


def _inside(source: ModelSource, roots: list[Path]) -> bool:
    real_roots = [root.resolve() for root in roots]

    def within(path: Path) -> bool:
        real = path.resolve()
        return any(real.is_relative_to(root) for root in real_roots)

    if not within(source.path):
        return False
    return source.format == "gguf" or all(within(entry) for entry in source.path.iterdir())


def scrub_paths(message: str, config: NeuronConfig) -> str:
    """`message` with every root (as configured and as resolved) cut off the paths in it."""
    prefixes = {str(p) for root in model_roots(config) for p in (root, root.resolve())}
    for prefix in sorted(prefixes, key=len, reverse=True):
        message = message.replace(prefix.rstrip("/") + "/", "").replace(prefix, "<models>")
    return message

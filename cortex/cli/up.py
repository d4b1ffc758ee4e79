"""`cortex up`: the embedded default — a local neuron serving the demo model and a gateway
in front of it, both on 127.0.0.1, stopped together by Ctrl-C.

The neuron runs as a subprocess (`python -m neuron.cli`): the gateway never imports it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

from cortex.config import (
    CortexConfig,
    GatewaySection,
    ModelProfile,
    ModelsConfig,
    NeuronEntry,
    PollerSection,
    Settings,
)
from cortex.server import run_gateway, run_loop

log = logging.getLogger("cortex.cli.up")
NODE = "local"
DEMO_ALIAS = "smollm2"
# Claude Code asks for Claude models by name (its main and its small model): all are the demo.
CLAUDE_ALIAS = "claude-*"


def fetch_demo(models_dir: Path) -> str:
    """Place the demo GGUF in models_dir (via `neuron fetch-demo`); return its model id."""
    cmd = [sys.executable, "-m", "neuron.cli", "fetch-demo", "--models-dir", str(models_dir)]
    done = subprocess.run(cmd, check=True, capture_output=True, text=True)
    return done.stdout.strip().splitlines()[-1].split(" -> ")[0]


def demo_settings(model_id: str, port: int, metrics_port: int, neuron_port: int) -> Settings:
    cortex = CortexConfig(
        gateway=GatewaySection(
            listen=f"127.0.0.1:{port}", metrics_listen=f"127.0.0.1:{metrics_port}"
        ),
        # The neuron imports torch and loads the demo while the gateway already answers:
        # a minute of failed polls is still "coming up", and requests wait for it.
        poller=PollerSection(interval_seconds=1.0, timeout_seconds=2.0, unhealthy_after=60),
        neurons=[NeuronEntry(NODE, f"http://127.0.0.1:{neuron_port}")],
    )
    # Pinned: kept loaded (and reloaded should the neuron restart), never evicted.
    models = ModelsConfig(
        models=[ModelProfile(id=model_id, vram_mb=512, pinned_on=[NODE])],
        aliases={DEMO_ALIAS: model_id, CLAUDE_ALIAS: model_id},
    )
    return Settings(cortex, models, "<cortex up>")


def up(models_dir: str, port: int, metrics_port: int, neuron_port: int) -> int:
    directory = Path(models_dir).resolve()
    model_id = fetch_demo(directory)
    with tempfile.TemporaryDirectory(prefix="cortex-up-") as tmp:
        neuron_toml = Path(tmp) / "neuron.toml"
        neuron_toml.write_text(
            f'listen = "127.0.0.1"\nport = {neuron_port}\nmodels_dir = "{directory}"\n'
            # The GGUF's own 4-bit weights stay packed (neuron/models/weight_format.py).
            'cpu_quantization = "auto"\n'
            f'[[default_models]]\nmodel_id = "{model_id}"\n'
        )
        neuron = subprocess.Popen(
            [sys.executable, "-m", "neuron.cli", "serve", "-c", str(neuron_toml)]
        )
        try:
            settings = demo_settings(model_id, port, metrics_port, neuron_port)
            return run_loop(_run(settings, neuron, model_id))
        finally:
            _stop(neuron)


async def _run(settings: Settings, neuron: subprocess.Popen, model_id: str) -> int:
    stop = asyncio.Event()
    neuron_died = False
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)

    async def watch() -> None:
        nonlocal neuron_died
        while neuron.poll() is None and not stop.is_set():
            await asyncio.sleep(0.5)
        if not stop.is_set():
            log.error("the neuron exited with status %s", neuron.returncode)
            neuron_died = True
            stop.set()

    watcher = asyncio.create_task(watch())
    base = f"http://{settings.cortex.gateway.listen}"
    print(
        f"cortex up: {model_id} (aliases {DEMO_ALIAS!r}, {CLAUDE_ALIAS!r}) through {base}/v1 "
        f"(OpenAI, OpenAI Responses and Anthropic; Claude Code: ANTHROPIC_BASE_URL={base}); "
        "Ctrl-C stops",
        flush=True,
    )
    try:
        await run_gateway(settings, stop)
    finally:
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher
    return 1 if neuron_died else 0


def _stop(neuron: subprocess.Popen) -> None:
    """SIGTERM (the neuron drains); a second Ctrl-C or 30 s without exit kills it."""
    if neuron.poll() is None:
        neuron.send_signal(signal.SIGTERM)
    try:
        neuron.wait(30)
    except (subprocess.TimeoutExpired, KeyboardInterrupt):
        neuron.kill()
        neuron.wait()

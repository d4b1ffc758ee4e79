"""Gateway settings files, start-up refusal of a bad file, and the light dependency rule."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from cortex.common.configfile import ConfigError
from cortex.config import load_settings
from tests.support.procs import free_port

TOML = """
models_config = "conf/models.toml"
[gateway]
listen = "127.0.0.1:9000"
api_keys = ["k"]
[eviction]
strategy = "priority"
idle_unload_seconds = 30
[[neurons]]
name = "a"
endpoint = "http://10.0.0.1:13131"
token = "t"
"""
YAML = """
models_config: conf/models.toml
gateway: {listen: "127.0.0.1:9000", api_keys: [k]}
eviction: {strategy: priority, idle_unload_seconds: 30}
neurons:
  - {name: a, endpoint: "http://10.0.0.1:13131", token: t}
"""
MODELS = """
[[models]]
id = "org/model"
quant = "Q4_K_M"
vram_mb = 4000
pinned_on = ["a"]
[aliases]
small = "org/model:Q4_K_M"
"""


def test_toml_and_yaml_settings_agree(tmp_path: Path) -> None:
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "models.toml").write_text(MODELS)
    (tmp_path / "cortex.toml").write_text(TOML)
    (tmp_path / "cortex.yaml").write_text(YAML)
    toml = load_settings(tmp_path / "cortex.toml", environ={})
    yaml = load_settings(tmp_path / "cortex.yaml", environ={})
    assert toml.cortex == yaml.cortex and toml.models == yaml.models
    assert toml.cortex.eviction.idle_unload_seconds == 30.0
    assert toml.models.models[0].model_id == "org/model:Q4_K_M"
    env = {"CORTEX_EVICTION__STRATEGY": "lru", "CORTEX_GATEWAY__MAX_BODY_BYTES": "1024"}
    overridden = load_settings(tmp_path / "cortex.toml", environ=env)
    assert overridden.cortex.eviction.strategy == "lru"
    assert overridden.cortex.gateway.max_body_bytes == 1024


@pytest.mark.parametrize(
    ("cortex_toml", "models_toml", "message"),
    [
        (
            '[eviction]\nstrategy = "fifo"',
            None,
            'cortex.toml: eviction.strategy: expected one of "lru", "priority", got "fifo"',
        ),
        (
            '[gateway]\nlisten = "nowhere"',
            None,
            'cortex.toml: gateway.listen: expected HOST:PORT, got "nowhere"',
        ),
        (
            '[[neurons]]\nname = "a"\nendpoint = "a:1"',
            None,
            'cortex.toml: neurons[0].endpoint: expected an http:// or https:// URL, got "a:1"',
        ),
        (
            '[[neurons]]\nname = "a"\nendpoint = "http://a:1"\n[[neurons]]\nname = "a"\nendpoint = "http://b:1"',
            None,
            'cortex.toml: neurons: expected unique names, got "a" twice',
        ),
        (
            'models_config = "models.toml"',
            '[[models]]\nid = "m"\nvram_mb = "lots"',
            'models.toml: models[0].vram_mb: expected an integer, got "lots"',
        ),
    ],
)
def test_bad_config_stops_serve_before_start(
    tmp_path: Path, cortex_toml: str, models_toml: str | None, message: str
) -> None:
    (tmp_path / "cortex.toml").write_text(cortex_toml)
    if models_toml:
        (tmp_path / "models.toml").write_text(models_toml)
    with pytest.raises(ConfigError) as info:
        load_settings(tmp_path / "cortex.toml", environ={})
    assert str(info.value).replace(f"{tmp_path}/", "") == message
    done = subprocess.run(
        [sys.executable, "-m", "cortex.cli.main", "serve", "-c", "cortex.toml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.strip() == f"cortex: {message}"


def test_serve_answers_health_and_stops_on_sigterm(tmp_path: Path) -> None:
    port = free_port()
    (tmp_path / "cortex.toml").write_text(
        f'[gateway]\nlisten = "127.0.0.1:{port}"\nmetrics_listen = "127.0.0.1:{free_port()}"\n'
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "cortex.cli.main", "serve", "-c", "cortex.toml"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        from tests.support.http import http, wait_until

        def health():
            try:
                return http("GET", f"http://127.0.0.1:{port}/health", timeout=2)
            except OSError:
                return None

        status, body, _ = wait_until(health, 30, "gateway health")
        assert status == 200 and body["nodes"] == 0 and body["status"] == "degraded"
    finally:
        proc.terminate()
        assert proc.wait(20) == 0


def test_gateway_never_imports_torch_or_neuron() -> None:
    code = textwrap.dedent("""
        import importlib, pkgutil, sys
        import cortex
        for info in pkgutil.walk_packages(cortex.__path__, "cortex."):
            importlib.import_module(info.name)
        heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "neuron", "neuron_kernels", "triton"))
        print(len([m for m in sys.modules if m.startswith("cortex.")]), heavy)
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    count, heavy = done.stdout.split(" ", 1)
    assert int(count) >= 20 and heavy.strip() == "[]"

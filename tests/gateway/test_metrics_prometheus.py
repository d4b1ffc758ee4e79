"""A real Prometheus server scrapes the gateway; the §4.4 series carry the expected counts."""

from __future__ import annotations

import subprocess
import time
import urllib.parse
from pathlib import Path

import openai
import pytest

from tests.support.http import http, wait_until
from tests.support.procs import free_port

SERIES = (
    "cortex_requests_total",
    "cortex_request_duration_seconds_count",
    "cortex_time_to_first_token_seconds_count",
    "cortex_output_tokens_per_second_count",
    "cortex_tokens_total",
    "cortex_cold_starts_total",
    "cortex_model_load_duration_seconds_count",
    "cortex_evictions_total",
    "cortex_queue_wait_seconds_count",
    "cortex_inflight_requests",
    "cortex_node_up",
    "cortex_model_loaded",
    "cortex_build_info",
)
A, B = "tiny-qwen2", "tiny-mistral"


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory):
    def start(target: str) -> str:
        workdir: Path = tmp_path_factory.mktemp("prometheus")
        config = workdir / "prometheus.yml"
        config.write_text(
            "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
            "scrape_configs:\n"
            f"  - job_name: cortex\n    static_configs: [{{targets: ['{target}']}}]\n"
        )
        port = free_port()
        log = (workdir / "prometheus.log").open("wb")
        proc = subprocess.Popen(
            [
                "prometheus",
                f"--config.file={config}",
                f"--storage.tsdb.path={workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        started.append(proc)
        url = f"http://127.0.0.1:{port}"
        wait_until(lambda: _ok(url + "/-/ready"), 60, "prometheus ready")
        return url

    started: list[subprocess.Popen] = []
    yield start
    for proc in started:
        proc.terminate()
        proc.wait(20)


def _ok(url: str) -> bool:
    try:
        return http("GET", url, timeout=2).status == 200
    except OSError:
        return False


def query(base: str, expr: str) -> dict[str, float]:
    """Instant query → {'label=value,...': number}."""
    url = f"{base}/api/v1/query?query={urllib.parse.quote(expr)}"
    result = http("GET", url, timeout=10).json()["data"]["result"]
    return {
        ",".join(
            f"{k}={v}"
            for k, v in sorted(r["metric"].items())
            if k not in ("job", "instance", "__name__")
        ): float(r["value"][1])
        for r in result
    }


def test_prometheus_scrapes_expected_series(procs, prometheus) -> None:
    neuron = procs.neuron("p1")
    half = int(neuron.capacity_mb() * 0.6)  # two models do not fit together
    gateway = procs.gateway([neuron], [{"id": A, "vram_mb": half}, {"id": B, "vram_mb": half}])
    base = prometheus(f"127.0.0.1:{gateway.metrics_port}")
    client = openai.OpenAI(base_url=gateway.url + "/v1", api_key="none", max_retries=0)
    messages = [{"role": "user", "content": "hi"}]
    prompt = completion = 0
    for _ in range(3):
        usage = client.chat.completions.create(model=A, messages=messages, max_tokens=4).usage
        prompt, completion = prompt + usage.prompt_tokens, completion + usage.completion_tokens
    for _ in range(2):  # loading B evicts A
        chunks = list(
            client.chat.completions.create(
                model=B,
                messages=messages,
                max_tokens=5,
                stream=True,
                stream_options={"include_usage": True},
            )
        )
        prompt += chunks[-1].usage.prompt_tokens
        completion += chunks[-1].usage.completion_tokens
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="nope", messages=messages)

    def settled():
        return sum(query(base, "cortex_requests_total").values()) == 6

    time.sleep(1)
    wait_until(settled, 30, "prometheus has scraped all requests")

    present = {name for name in SERIES if query(base, name)}
    assert present == set(SERIES), set(SERIES) - present
    node = "node=p1"
    assert query(base, "cortex_requests_total") == {
        f"code=200,dialect=openai,model={A},{node}": 3,
        f"code=200,dialect=openai,model={B},{node}": 2,
        "code=404,dialect=openai,model=unknown,node=none": 1,
    }
    assert query(base, "cortex_request_duration_seconds_count") == {
        f"dialect=openai,model={A},{node}": 3,
        f"dialect=openai,model={B},{node}": 2,
    }
    assert query(base, "cortex_time_to_first_token_seconds_count") == {
        f"dialect=openai,model={B},{node}": 2
    }
    assert query(base, "sum by (kind) (cortex_tokens_total)") == {
        "kind=prompt": prompt,
        "kind=completion": completion,
    }
    assert query(base, "cortex_cold_starts_total") == {
        f"model={A},{node}": 1,
        f"model={B},{node}": 1,
    }
    assert query(base, "cortex_model_load_duration_seconds_count") == {
        f"model={A},{node}": 1,
        f"model={B},{node}": 1,
    }
    assert query(base, "cortex_evictions_total") == {f"model={A},{node},reason=capacity": 1}
    assert query(base, "cortex_queue_wait_seconds_count") == {f"model={A}": 1, f"model={B}": 1}
    assert set(query(base, "cortex_inflight_requests").values()) == {0}
    assert query(base, "cortex_node_up") == {node: 1}
    assert query(base, "cortex_model_loaded") == {f"model={A},{node}": 0, f"model={B},{node}": 1}
    build = query(base, "cortex_build_info")
    assert list(build.values()) == [1] and "version=" in next(iter(build))

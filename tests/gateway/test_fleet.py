"""Two real neurons behind one gateway: merged catalogue, cold load with single flight,
operator lifecycle, keys and body limits, and `cortex status` against the live fleet."""

from __future__ import annotations

import json
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.support.http import http, metric_sum

CATALOGUE = [
    {"id": "tiny-qwen2", "vram_mb": 100, "priority": 1},
    {"id": "tiny-mistral", "vram_mb": 100},
]


@pytest.fixture(scope="module")
def fleet(procs):
    n1, n2 = procs.neuron("n1"), procs.neuron("n2")
    # Loaded behind the gateway's back and absent from the catalogue: still listed and routable.
    status, _, _ = http("POST", n1.url + "/models/load", {"model_id": "tiny-llama"})
    assert status == 200
    gateway = procs.gateway([n1, n2], CATALOGUE, aliases={"fast": "tiny-qwen2"})
    return n1, n2, gateway


def test_merged_catalogue(fleet) -> None:
    _n1, _n2, gateway = fleet
    status, body, _ = gateway.get("/v1/models")
    assert status == 200 and body["object"] == "list"
    models = {m["id"]: m for m in body["data"]}
    assert set(models) == {"tiny-llama", "tiny-qwen2", "tiny-mistral", "fast"}
    assert models["tiny-llama"]["loaded_on"] == ["n1"]
    assert models["tiny-llama"]["loadable_on"] == []
    assert models["tiny-qwen2"]["loaded_on"] == [] and models["tiny-qwen2"]["loadable_on"] == [
        "n1",
        "n2",
    ]
    assert models["fast"]["alias_of"] == "tiny-qwen2"
    assert all(m["object"] == "model" and m["owned_by"] for m in body["data"])

    status, one, _ = gateway.get("/v1/models/fast")
    assert status == 200 and one["id"] == "fast" and one["alias_of"] == "tiny-qwen2"
    status, anthropic, _ = gateway.get("/v1/models", headers={"anthropic-version": "2023-06-01"})
    assert status == 200 and anthropic["has_more"] is False
    assert {m["id"] for m in anthropic["data"]} == set(models)
    assert all(m["type"] == "model" and m["created_at"].endswith("Z") for m in anthropic["data"])
    status, missing, _ = gateway.get("/v1/models/nope")
    assert status == 404 and missing["error"]["type"] == "not_found_error"
    status, missing, _ = gateway.get("/v1/models/nope", headers={"anthropic-version": "2023-06-01"})
    assert status == 404 and missing["type"] == "error"

    status, text, _ = gateway.chat("tiny-llama")
    assert status == 200 and text["model"] == "tiny-llama"


def test_cold_load_is_single_flight(fleet) -> None:
    n1, n2, gateway = fleet
    loads_before = n1.load_count() + n2.load_count()
    assert "tiny-qwen2" not in n1.loaded() and "tiny-qwen2" not in n2.loaded()
    with ThreadPoolExecutor(10) as pool:
        answers = list(pool.map(lambda _: gateway.chat("fast", max_tokens=3), range(10)))
    assert [a.status for a in answers] == [200] * 10, answers
    assert {a.body["model"] for a in answers} == {"tiny-qwen2"}
    holders = [n for n in (n1, n2) if n.loaded().get("tiny-qwen2") == "ready"]
    assert len(holders) == 1
    assert n1.load_count() + n2.load_count() == loads_before + 1
    assert {a.headers["x-cortex-node"] for a in answers} == {holders[0].name}
    metrics = gateway.metrics()
    assert metric_sum(metrics, "cortex_cold_starts_total", model="tiny-qwen2") == 1
    assert metric_sum(metrics, "cortex_requests_total", model="tiny-qwen2", code="200") == 10
    assert metric_sum(metrics, "cortex_queue_wait_seconds_count", model="tiny-qwen2") >= 1


def cortex(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "cortex.cli.main", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_operator_lifecycle_and_status(fleet) -> None:
    _n1, n2, gateway = fleet
    done = cortex("load", "tiny-mistral", "--node", "n2", "--url", gateway.url)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "tiny-mistral: ready on n2"
    assert n2.loaded()["tiny-mistral"] == "ready"

    live = gateway.fleet()
    table = cortex("status", "--url", gateway.url)
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert lines[0] == "2/2 nodes up"
    for node in live["nodes"]:
        row = next(line for line in lines if line.startswith(node["name"] + " "))
        assert row.split()[1] == "up" and node["endpoint"] in row
        for model in node["models"]:
            assert any(line.split()[:2] == [model["id"], model["status"]] for line in lines)
    assert any(line.split()[:1] == ["cpu-0"] and "GiB" in line for line in lines)
    as_json = json.loads(cortex("status", "--json", "--url", gateway.url).stdout)
    assert [n["name"] for n in as_json["nodes"]] == ["n1", "n2"]
    assert {m["id"] for m in as_json["nodes"][1]["models"]} == set(n2.loaded())

    listing = cortex("models", "--url", gateway.url).stdout
    assert any(line.split()[:2] == ["tiny-mistral", "n2"] for line in listing.splitlines())

    done = cortex("unload", "tiny-mistral", "--url", gateway.url)
    assert done.returncode == 0 and done.stdout.strip() == "tiny-mistral: unloaded on n2"
    assert "tiny-mistral" not in n2.loaded()
    failed = cortex("unload", "tiny-mistral", "--url", gateway.url)
    assert failed.returncode != 0 and "404" in failed.stderr and "not loaded" in failed.stderr


def test_keys_and_body_limit(fleet, procs) -> None:
    n1, n2, _ = fleet
    gateway = procs.gateway(
        [n1, n2],
        CATALOGUE,
        name="keyed",
        gateway={"api_keys": ["user-key"], "admin_keys": ["admin-key"], "max_body_bytes": 2048},
    )
    assert gateway.get("/health").status == 200
    status, body, _ = gateway.get("/v1/models")
    assert status == 401 and body["error"]["type"] == "authentication_error"
    assert gateway.get("/v1/models", headers={"Authorization": "Bearer wrong"}).status == 401
    assert gateway.get("/v1/models", headers={"Authorization": "Bearer user-key"}).status == 200
    assert gateway.get("/v1/models", headers={"x-api-key": "user-key"}).status == 200
    status, body, _ = gateway.post("/v1/messages", {}, headers={})
    assert status == 401 and body["type"] == "error", "Anthropic routes answer in their envelope"
    user = {"Authorization": "Bearer user-key"}
    admin = {"Authorization": "Bearer admin-key"}
    assert gateway.post("/admin/models/unload", {"model": "tiny-llama"}, headers=user).status == 403
    status, body, _ = gateway.post("/admin/models/unload", {"model": "nope"}, headers=admin)
    assert status == 404 and "not loaded" in body["error"]["message"]
    big = {"model": "tiny-llama", "messages": [{"role": "user", "content": "x" * 4096}]}
    status, body, _ = gateway.post("/v1/chat/completions", big, headers=user)
    assert status == 413 and body["error"]["type"] == "request_too_large"

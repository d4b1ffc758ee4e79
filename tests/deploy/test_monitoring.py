"""Prometheus config and alert rules are valid, the alerts fire as specified, and the
dashboard and alerts read only metrics the gateway and neuron really export."""

from __future__ import annotations

import json

import pytest
import yaml

from cortex.metrics import Metrics
from neuron.metrics import NeuronMetrics
from tests.deploy.promql import SUFFIXES, exported_names, metric_names
from tests.deploy.tools import MONITORING, need, run

DASHBOARD = MONITORING / "grafana-dashboard.json"
ALERTS = MONITORING / "alerts.yml"


def test_prometheus_config_is_valid() -> None:
    result = run([need("promtool"), "check", "config", "prometheus.yml"], cwd=MONITORING)
    assert result.returncode == 0, result.stdout + result.stderr


def test_alert_rules_are_valid() -> None:
    result = run([need("promtool"), "check", "rules", "alerts.yml"], cwd=MONITORING)
    assert result.returncode == 0, result.stdout + result.stderr
    names = {
        rule["alert"]
        for group in yaml.safe_load(ALERTS.read_text())["groups"]
        for rule in group["rules"]
    }
    assert {
        "NeuronDown",
        "GatewaySeesNodeDown",
        "HighTimeToFirstToken",
        "ModelLoadFailures",
    } <= names


def test_alerts_fire_on_the_series_that_should_raise_them() -> None:
    result = run([need("promtool"), "test", "rules", "alerts_test.yml"], cwd=MONITORING)
    assert result.returncode == 0, result.stdout + result.stderr


def test_metric_name_extraction() -> None:
    expr = (
        'histogram_quantile(0.95, sum by (le, model) (rate(foo_seconds_bucket{a="b"}'
        "[$__rate_interval]))) / clamp_min(bar_total, 1e-9) > 10 and on(node) up"
    )
    assert metric_names(expr) == {"foo_seconds_bucket", "bar_total", "up"}
    assert metric_names("label_values(cortex_model_loaded, model)") == {"cortex_model_loaded"}


@pytest.fixture(scope="module")
def exported() -> set[str]:
    return exported_names(Metrics().registry) | exported_names(NeuronMetrics().registry) | {"up"}


def dashboard_queries() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    queries = [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]
    queries += [
        v["query"]["query"] for v in dashboard["templating"]["list"] if v["type"] == "query"
    ]
    return queries


def alert_queries() -> list[str]:
    return [
        rule["expr"]
        for group in yaml.safe_load(ALERTS.read_text())["groups"]
        for rule in group["rules"]
    ]


@pytest.mark.parametrize("source", ["dashboard", "alerts"])
def test_queries_read_only_exported_metrics(source: str, exported: set[str]) -> None:
    queries = dashboard_queries() if source == "dashboard" else alert_queries()
    for query in queries:
        names = metric_names(query)
        assert names, f"no metric in {query!r}"
        assert names <= exported, f"{sorted(names - exported)} in {query!r} are not exported"


def test_dashboard_shows_every_gateway_metric() -> None:
    used = {name for query in dashboard_queries() for name in metric_names(query)}
    for family in Metrics().registry.collect():
        series = {family.name + suffix for suffix in SUFFIXES[family.type]}
        assert series & used, family.name

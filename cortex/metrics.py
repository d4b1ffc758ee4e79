"""Gateway metrics (listed in README.md, "API") on their own registry, served on the
metrics port.

Each app owns a registry so several gateways (tests, `cortex up`) can live in one
process. Labels are low-cardinality: model ids from the catalogue, node names from
the config, the dialect, a status code, a token kind, an eviction reason, which is
also why `Metrics.child` may keep every labelled child it hands out.
"""

from __future__ import annotations

import platform
from typing import Any

from aiohttp import web
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

from cortex import __version__
from cortex.common.secrets import bearer, key_matches

_LATENCY = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
_RATE = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000)
_LOAD = (0.1, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600)


class Metrics:
    def __init__(self) -> None:
        self.registry = registry = CollectorRegistry()
        self.requests = Counter(
            "cortex_requests_total",
            "Requests answered, by final status code",
            ["model", "node", "dialect", "code"],
            registry=registry,
        )
        self.duration = Histogram(
            "cortex_request_duration_seconds",
            "Time to the end of the response (streams included)",
            ["model", "node", "dialect"],
            buckets=_LATENCY,
            registry=registry,
        )
        self.ttft = Histogram(
            "cortex_time_to_first_token_seconds",
            "Time from request arrival to the first generated token leaving the gateway",
            ["model", "node", "dialect"],
            buckets=_LATENCY,
            registry=registry,
        )
        self.tokens_per_second = Histogram(
            "cortex_output_tokens_per_second",
            "Completion tokens per second after the first token",
            ["model", "node"],
            buckets=_RATE,
            registry=registry,
        )
        self.tokens = Counter(
            "cortex_tokens_total",
            "Tokens processed, from upstream usage",
            ["model", "node", "kind"],
            registry=registry,
        )
        self.cold_starts = Counter(
            "cortex_cold_starts_total",
            "Model loads the gateway started",
            ["model", "node"],
            registry=registry,
        )
        self.load_duration = Histogram(
            "cortex_model_load_duration_seconds",
            "Duration of successful model loads",
            ["model", "node"],
            buckets=_LOAD,
            registry=registry,
        )
        self.evictions = Counter(
            "cortex_evictions_total",
            "Models unloaded by the gateway, by reason",
            ["model", "node", "reason"],
            registry=registry,
        )
        self.queue_wait = Histogram(
            "cortex_queue_wait_seconds",
            "Time a request waited for a model to become servable",
            ["model"],
            buckets=_LATENCY,
            registry=registry,
        )
        self.inflight = Gauge(
            "cortex_inflight_requests",
            "Requests being served by a node",
            ["model", "node"],
            registry=registry,
        )
        self.affinity = Counter(
            "cortex_cache_affinity_total",
            "Routing of requests with a conversation key, in a fleet of two or more nodes, to "
            "its rendezvous node: hit (where this gateway sent it before), miss (new to this "
            "gateway, or the model was reloaded there), override (that node was too busy)",
            ["model", "outcome"],
            registry=registry,
        )
        self.node_up = Gauge(
            "cortex_node_up", "1 if the node is reachable", ["node"], registry=registry
        )
        self.model_loaded = Gauge(
            "cortex_model_loaded",
            "1 if the model is loaded and ready on the node",
            ["model", "node"],
            registry=registry,
        )
        self.state_up = Gauge(
            "cortex_state_up",
            "1 while the shared state ([state]) answers; 0: going on from local state",
            registry=registry,
        )
        self.state_errors = Counter(
            "cortex_state_errors_total",
            "Operations on the shared state that failed or timed out",
            ["operation"],
            registry=registry,
        )
        self.build_info = Gauge(
            "cortex_build_info", "Gateway build", ["version", "python"], registry=registry
        )
        self.build_info.labels(__version__, platform.python_version()).set(1)
        self._children: dict[tuple[Any, tuple[str, ...]], Any] = {}

    def child(self, metric: Any, *labels: str) -> Any:
        """`metric.labels(*labels)`, remembered: prometheus_client validates the labels
        and takes a lock on every `labels()` call, which the request path pays per request."""
        key = (metric, labels)
        found = self._children.get(key)
        if found is None:
            found = self._children[key] = metric.labels(*labels)
        return found

    def export(self) -> bytes:
        return generate_latest(self.registry)


def metrics_app(metrics: Metrics, keys: list[str] | None = None) -> web.Application:
    """A tiny app for the metrics port: GET /metrics, with `Bearer KEY` when keys are set."""

    async def handle(request: web.Request) -> web.Response:
        if keys and not key_matches(bearer(request.headers.get("Authorization", "")), keys):
            return web.Response(status=401, text="a metrics key is required\n")
        resp = web.Response(body=metrics.export())
        resp.headers["Content-Type"] = CONTENT_TYPE_LATEST
        return resp

    app = web.Application()
    app.router.add_get("/metrics", handle)
    return app

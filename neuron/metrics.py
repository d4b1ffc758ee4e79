"""Prometheus metrics for the daemon, on a registry of its own (not the global one).

Counters and histograms are updated as requests run; gauges that mirror engine
and device state are refreshed when /metrics is scraped, from the snapshots the
device workers publish.
"""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import CONTENT_TYPE_LATEST as CONTENT_TYPE
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)

__all__ = ["CONTENT_TYPE", "NeuronMetrics"]

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
_TOKEN_TIME_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28)
_LOAD_BUCKETS = (0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)


class NeuronMetrics:
    def __init__(self) -> None:
        disable_created_metrics()  # `_created` series only double the scrape size
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "neuron_requests", "HTTP requests served", ["endpoint", "code"], registry=r
        )
        self.tokens = Counter("neuron_tokens", "Tokens processed", ["model", "kind"], registry=r)
        self.ttft = Histogram(
            "neuron_time_to_first_token_seconds",
            "From request arrival to its first generated token",
            ["model"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.tpot = Histogram(
            "neuron_time_per_output_token_seconds",
            "Mean time between output tokens of a finished request",
            ["model"],
            buckets=_TOKEN_TIME_BUCKETS,
            registry=r,
        )
        self.queue_time = Histogram(
            "neuron_queue_time_seconds",
            "From request arrival until its device worker accepted it",
            ["model"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.load_duration = Histogram(
            "neuron_model_load_duration_seconds",
            "Time to load a model and build its engine",
            ["model"],
            buckets=_LOAD_BUCKETS,
            registry=r,
        )
        self.load_failures = Counter(
            "neuron_model_load_failures", "Failed model loads", ["reason"], registry=r
        )
        self.running = Gauge("neuron_running_requests", "Sequences running", ["model"], registry=r)
        self.waiting = Gauge("neuron_waiting_requests", "Sequences waiting", ["model"], registry=r)
        self.kv_usage = Gauge(
            "neuron_kv_cache_usage_ratio", "Fraction of KV blocks in use", ["model"], registry=r
        )
        self.device_total = Gauge(
            "neuron_device_memory_total_bytes", "Device memory", ["device"], registry=r
        )
        self.device_free = Gauge(
            "neuron_device_memory_free_bytes", "Free device memory", ["device"], registry=r
        )
        self.loaded = Gauge("neuron_model_loaded", "1 per loaded model", ["model"], registry=r)
        self.prefix_queries = Counter(
            "neuron_prefix_cache_queries_tokens",
            "Prompt tokens looked up in the prefix cache",
            ["model"],
            registry=r,
        )
        self.prefix_hits = Counter(
            "neuron_prefix_cache_hits_tokens",
            "Prompt tokens served from the prefix cache",
            ["model"],
            registry=r,
        )
        self.cached_blocks = Gauge(
            "neuron_prefix_cache_blocks",
            "KV blocks holding a reusable prefix, in use or not",
            ["model"],
            registry=r,
        )

    def refresh(self, devices: Iterable, engine_stats: dict[str, object]) -> None:
        """Mirror current device and engine state into the gauges."""
        for device in devices:
            self.device_total.labels(device.id).set(device.memory_total_bytes)
            self.device_free.labels(device.id).set(device.memory_free_bytes)
        for gauge in (self.running, self.waiting, self.kv_usage, self.loaded, self.cached_blocks):
            gauge.clear()
        for model, stats in engine_stats.items():
            self.loaded.labels(model).set(1)
            self.running.labels(model).set(stats.running)
            self.waiting.labels(model).set(stats.waiting)
            used = 1.0 - stats.free_blocks / stats.total_blocks if stats.total_blocks else 0.0
            self.kv_usage.labels(model).set(used)
            self.cached_blocks.labels(model).set(stats.cached_blocks)

    def render(self) -> bytes:
        return generate_latest(self.registry)

"""Gateway configuration: `cortex.toml` (or YAML) and the `models.toml` it points to.

Keys are those of examples/cortex.toml and examples/models.toml; `[routing]` and `[upstream]` hold the waiting and timeout
knobs the router and proxy need. `CORTEX_SECTION__KEY` variables override the file.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from cortex.common.configfile import ConfigError, build, load_config, load_document
from cortex.common.limits import server_limits_problem


@dataclass
class GatewaySection:
    listen: str = "0.0.0.0:31313"
    metrics_listen: str = "0.0.0.0:31314"
    api_keys: list[str] = field(default_factory=list)
    admin_keys: list[str] = field(default_factory=list)
    max_body_bytes: int = 8 * 1024 * 1024
    metrics_keys: list[str] = field(default_factory=list)  # Bearer keys for the metrics port
    # A connection must complete each request head this long after opening or after its
    # previous answer (idle keep-alive included), and send a body within its own deadline.
    header_read_timeout_seconds: float = 60.0
    body_read_timeout_seconds: float = 60.0
    max_connections: int = 1024

    def validate(self) -> tuple[str, str, str] | None:
        problem = server_limits_problem(self)
        if problem is not None:
            return problem
        for key in ("listen", "metrics_listen"):
            value = getattr(self, key)
            try:
                parse_listen(value)
            except ValueError:
                return key, "HOST:PORT", f'"{value}"'
        if self.max_body_bytes <= 0:
            return "max_body_bytes", "a positive integer", str(self.max_body_bytes)
        return None


@dataclass
class EvictionSection:
    strategy: Literal["lru", "priority"] = "lru"
    defrag_after_cycles: int = 0
    idle_unload_seconds: float = 0.0


@dataclass
class PollerSection:
    interval_seconds: float = 5.0
    timeout_seconds: float = 2.0
    unhealthy_after: int = 3


@dataclass
class RoutingSection:
    """How long and how many requests may wait for a model, and keep-alive spacing."""

    max_wait_seconds: float = 120.0
    max_waiting: int = 256
    keepalive_seconds: float = 10.0
    # A conversation returns to the node holding its prefix cache unless that node has
    # more than this many more requests of the model in flight than the least-loaded one.
    cache_affinity_margin: int = 4

    def validate(self) -> tuple[str, str, str] | None:
        if self.cache_affinity_margin < 0:
            return "cache_affinity_margin", "0 or more", str(self.cache_affinity_margin)
        return None


@dataclass
class UpstreamSection:
    """Timeouts towards neurons: a stream is cut when idle, never for being long."""

    connect_timeout_seconds: float = 5.0
    # From the node's choice (after any cold load) to its response head (non-stream: its
    # first byte); past it the node is marked suspect and the request moves once.
    first_byte_timeout_seconds: float = 60.0
    stream_idle_timeout_seconds: float = 120.0
    request_timeout_seconds: float = 600.0
    load_timeout_seconds: float = 900.0


@dataclass
class ResponsesSection:
    """The Responses dialect's store of responses (`store`, `previous_response_id`), kept
    where `[state]` says, the oldest dropped past `store_max_responses`."""

    store_max_responses: int = 1000
    store_ttl_seconds: float = 3600.0

    def validate(self) -> tuple[str, str, str] | None:
        if self.store_max_responses < 0:
            return "store_max_responses", "an integer >= 0", str(self.store_max_responses)
        if self.store_ttl_seconds <= 0:
            return "store_ttl_seconds", "a positive number", str(self.store_ttl_seconds)
        return None


@dataclass
class StateSection:
    """What several gateways share: in this process only (`memory`, one gateway), or in
    Redis (`redis`): the Responses store, cold-load leases and in-flight counts."""

    backend: Literal["memory", "redis"] = "memory"
    url: str = "redis://127.0.0.1:6379/0"  # redis:// or rediss:// (TLS)
    password: str | None = None  # or in the URL; best from the environment file
    key_prefix: str = "cortex:"
    # The longest a request waits on one Redis operation before going on without it.
    timeout_seconds: float = 0.25
    # A cold-load lease and a gateway's in-flight counts live this long unless renewed,
    # so a gateway that dies stops holding loads or counting requests.
    lease_seconds: float = 10.0
    sync_interval_seconds: float = 0.5  # how often in-flight counts are exchanged

    def validate(self) -> tuple[str, str, str] | None:
        if self.backend == "redis" and not self.url.startswith(("redis://", "rediss://")):
            return "url", "a redis:// or rediss:// URL", f'"{self.url}"'
        for key in ("timeout_seconds", "lease_seconds", "sync_interval_seconds"):
            if getattr(self, key) <= 0:
                return key, "a positive number", str(getattr(self, key))
        return None


@dataclass
class NeuronEntry:
    name: str
    endpoint: str
    token: str | None = None

    def validate(self) -> tuple[str, str, str] | None:
        if not self.endpoint.startswith(("http://", "https://")):
            return "endpoint", "an http:// or https:// URL", f'"{self.endpoint}"'
        return None


Capability = Literal["chat", "embeddings", "rerank", "fim"]


@dataclass
class ModelProfile:
    """Where a model may be placed: memory, device count, pins and eviction priority."""

    id: str
    vram_mb: int = 0
    min_devices: int = 1
    min_device_vram_mb: int = 0
    quant: str | None = None
    pinned_on: list[str] = field(default_factory=list)
    priority: int = 0
    context_length: int | None = None
    # What it serves (chat, embeddings, rerank, fim); None: what the neuron reports.
    capabilities: list[Capability] | None = None

    def validate(self) -> tuple[str, str, str] | None:
        if self.min_devices < 1:
            return "min_devices", "an integer >= 1", str(self.min_devices)
        return None

    @property
    def model_id(self) -> str:
        """The id the neuron loads: `repo:QUANT` when a quant is named."""
        return f"{self.id}:{self.quant}" if self.quant and ":" not in self.id else self.id


@dataclass
class ModelsConfig:
    models: list[ModelProfile] = field(default_factory=list)
    aliases: dict[str, str] = field(default_factory=dict)


@dataclass
class CortexConfig:
    gateway: GatewaySection = field(default_factory=GatewaySection)
    eviction: EvictionSection = field(default_factory=EvictionSection)
    poller: PollerSection = field(default_factory=PollerSection)
    routing: RoutingSection = field(default_factory=RoutingSection)
    upstream: UpstreamSection = field(default_factory=UpstreamSection)
    responses: ResponsesSection = field(default_factory=ResponsesSection)
    state: StateSection = field(default_factory=StateSection)
    neurons: list[NeuronEntry] = field(default_factory=list)
    models_config: str | None = None


@dataclass
class Settings:
    """Everything the gateway runs with, both files read and checked."""

    cortex: CortexConfig
    models: ModelsConfig
    source: str = "<defaults>"


def parse_listen(value: str) -> tuple[str, int]:
    """`host:port` (or `[v6]:port`) → (host, port)."""
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(value)
    return host.strip("[]") or "0.0.0.0", int(port)


def load_settings(path: str | Path, environ: dict[str, str] | None = None) -> Settings:
    """Read cortex.toml and its models file; raise ConfigError naming file and key."""
    cortex = load_config(CortexConfig, path, env_prefix="CORTEX_", environ=environ)
    names = [n.name for n in cortex.neurons]
    duplicates = {n for n in names if names.count(n) > 1}
    if duplicates:
        raise ConfigError(str(path), "neurons", "unique names", f'"{sorted(duplicates)[0]}" twice')
    state, poll = cortex.state, cortex.poller.interval_seconds
    if state.backend == "redis" and state.lease_seconds <= poll:
        raise ConfigError(
            str(path), "state.lease_seconds", f"more than poller.interval_seconds ({poll:g})",
            str(state.lease_seconds),
        )  # fmt: skip
    models = ModelsConfig()
    if cortex.models_config:
        models_path = Path(path).parent / cortex.models_config
        models = build(ModelsConfig, load_document(models_path), source=str(models_path))
    return Settings(cortex, models, str(path))

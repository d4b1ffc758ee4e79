"""The tests' one HTTP client (the standard library only) and what they read back.

Every status comes back as a `Reply` (none raises), which unpacks as
`status, body, headers`; `body` is the parsed JSON, or the text where it is not JSON.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from multidict import CIMultiDict


@dataclass
class Reply:
    status: int
    headers: CIMultiDict[str]
    content: bytes

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", "replace")

    def json(self) -> Any:
        return json.loads(self.content)

    @property
    def body(self) -> Any:
        try:
            return self.json()
        except ValueError:
            return self.text

    def __iter__(self) -> Iterator[Any]:
        return iter((self.status, self.body, self.headers))


def http(
    method: str,
    url: str,
    body: Any = None,
    headers: dict[str, str] | None = None,
    timeout: float = 120,
) -> Reply:
    """One request; `body` is sent as is when it is bytes, else as JSON."""
    data = None if body is None else body if isinstance(body, bytes) else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    if data is not None and not request.has_header("Content-type"):
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as resp:
            return Reply(resp.status, CIMultiDict(resp.headers.items()), resp.read())
    except urllib.error.HTTPError as err:
        with err:
            return Reply(err.code, CIMultiDict(err.headers.items()), err.read())


def get_json(url: str, token: str | None = None) -> Any:
    """GET a JSON answer that must be a 200."""
    reply = http("GET", url, headers={"Authorization": f"Bearer {token}"} if token else None)
    assert reply.status == 200, f"GET {url}: {reply.status} {reply.text}"
    return reply.json()


def wait_until(predicate: Callable[[], Any], timeout: float = 60, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise TimeoutError(f"{what} not reached in {timeout}s")


def scrape(url: str) -> dict[str, float]:
    """Prometheus text → {'name{labels}': value} (labels as printed)."""
    samples = {}
    for line in http("GET", url, timeout=10).text.splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.rpartition(" ")
            samples[key] = float(value)
    return samples


def metric_sum(samples: dict[str, float], name: str, **labels: str) -> float:
    """Sum of a metric's samples whose labels include all of `labels`."""
    total = 0.0
    for key, value in samples.items():
        base = key.split("{", 1)[0]
        if base == name and all(f'{k}="{v}"' in key for k, v in labels.items()):
            total += value
    return total

"""What each daemon does with hostile clients: JSON nested too deep is a 400, a key
that is not ASCII a 401 (never a 500), a client that trickles its headers or its body
is cut off at the configured deadline, connections past the cap are refused, and the
gateway's metrics port wants its key."""

from __future__ import annotations

import socket
import time
import urllib.request
from dataclasses import dataclass

import pytest

from tests.support.daemons import start_gateway, start_neuron
from tests.support.http import http

HEAD_TIMEOUT = BODY_TIMEOUT = 1.0
MAX_CONNECTIONS = 4
LIMITS = {
    "header_read_timeout_seconds": HEAD_TIMEOUT,
    "body_read_timeout_seconds": BODY_TIMEOUT,
    "max_connections": MAX_CONNECTIONS,
}


@dataclass
class Target:
    port: int
    key_header: str  # a full header line carrying the right key

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@pytest.fixture(scope="module")
def daemons(tmp_path_factory, gw_models):
    workdir = tmp_path_factory.mktemp("hostile")
    neuron = start_neuron(workdir, gw_models, name="h1", token="tok", **LIMITS)
    gateway = start_gateway(
        workdir, [], [], gateway={"api_keys": ["k1"], "metrics_keys": ["m1"], **LIMITS}
    )
    yield {
        "neuron": Target(_port(neuron.url), "Authorization: Bearer tok"),
        "gateway": Target(_port(gateway.url), "x-api-key: k1"),
        "metrics": gateway.metrics_url,
    }
    gateway.stop()
    neuron.stop()


def _port(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


def _raw(port: int, data: bytes, timeout: float = 10) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(data)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
        return b"".join(chunks)


def _post(target: Target, body: bytes, key_header: str) -> bytes:
    head = (
        f"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
    ).encode()
    return _raw(target.port, head + key_header.encode() + b"\r\n\r\n" + body)


@pytest.mark.parametrize("daemon", ["neuron", "gateway"])
def test_deep_json_is_a_400(daemons, daemon):
    target = daemons[daemon]
    for depth in (65, 100_000):
        body = b'{"model": "m", "messages": ' + b"[" * depth + b"]" * depth + b"}"
        answer = _post(target, body, target.key_header)
        assert answer.startswith(b"HTTP/1.1 400"), answer[:300]
        assert b"nests deeper than 64" in answer
    shallow = b'{"model": "m", "x": ' + b"[" * 60 + b"]" * 60 + b"}"
    assert b"nests deeper" not in _post(target, shallow, target.key_header)


@pytest.mark.parametrize("daemon", ["neuron", "gateway"])
def test_a_key_that_is_not_ascii_is_a_401(daemons, daemon):
    target = daemons[daemon]
    name = target.key_header.split(":")[0]
    prefix = "Bearer " if name == "Authorization" else ""
    for value in ("ключ".encode(), b"\xff\xfe", "tok\u00e9".encode("latin-1")):
        line = f"{name}: {prefix}".encode() + value
        answer = _raw(target.port, _request_head(b"GET /v1/models", line))
        assert answer.startswith(b"HTTP/1.1 401"), answer[:300]


def _request_head(request_line: bytes, *lines: bytes) -> bytes:
    return (
        b"\r\n".join([request_line + b" HTTP/1.1", b"Host: x", b"Connection: close", *lines])
        + b"\r\n\r\n"
    )


def _trickle(port: int, head: bytes, piece: bytes, limit: float) -> float:
    """Send `head`, then `piece` every 0.2 s; seconds until the daemon closes on us."""
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=limit) as sock:
        sock.sendall(head)
        while time.monotonic() - started < limit:
            time.sleep(0.2)
            try:
                sock.sendall(piece)
                sock.settimeout(0.01)
                if sock.recv(65536) == b"":
                    return time.monotonic() - started
            except TimeoutError:
                continue
            except OSError:  # reset by the daemon
                return time.monotonic() - started
            finally:
                sock.settimeout(limit)
    raise AssertionError(f"still open after {limit} s of trickling")


@pytest.mark.parametrize("daemon", ["neuron", "gateway"])
def test_slow_headers_are_cut_off(daemons, daemon):
    target = daemons[daemon]
    head = b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n"
    closed = _trickle(target.port, head, b"X-Slow: 1\r\n", limit=10 * HEAD_TIMEOUT)
    print(f"{daemon}: trickled headers closed after {closed:.2f} s")


@pytest.mark.parametrize("daemon", ["neuron", "gateway"])
def test_slow_chunked_body_is_cut_off(daemons, daemon):
    target = daemons[daemon]
    head = (
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Transfer-Encoding: chunked\r\n" + target.key_header.encode() + b"\r\n\r\n"
    )
    closed = _trickle(target.port, head + b"1\r\n{\r\n", b"1\r\n \r\n", limit=10 * BODY_TIMEOUT)
    print(f"{daemon}: trickled body closed after {closed:.2f} s")


@pytest.mark.parametrize("daemon", ["neuron", "gateway"])
def test_connections_past_the_cap_are_refused(daemons, daemon):
    target = daemons[daemon]
    held = [socket.create_connection(("127.0.0.1", target.port)) for _ in range(MAX_CONNECTIONS)]
    try:
        time.sleep(0.2)  # all of them registered
        answer = _raw(target.port, b"")  # the daemon speaks first, and closes
        assert answer.startswith(b"HTTP/1.1 503"), answer[:200]
    finally:
        for sock in held:
            sock.close()
    time.sleep(0.2)
    assert http("GET", target.url + "/health").status == 200  # room again


def test_metrics_port_wants_its_key(daemons):
    url = daemons["metrics"]
    status, _, _ = http("GET", url)
    assert status == 401
    assert http("GET", url, headers={"Authorization": "Bearer k1"}).status == 401  # an API key
    request = urllib.request.Request(url, headers={"Authorization": "Bearer m1"})
    with urllib.request.urlopen(request, timeout=10) as resp:
        assert b"cortex_build_info" in resp.read()

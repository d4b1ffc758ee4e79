"""Calls from the gateway to one neuron's lifecycle API (docs/architecture.md "Wire")."""

from __future__ import annotations

import json
from typing import Any

import aiohttp

from cortex.common.wire import ApiError, openai_error_from_upstream


class NeuronClient:
    """Thin JSON client bound to one endpoint and its optional bearer token."""

    def __init__(self, session: aiohttp.ClientSession, endpoint: str, token: str | None) -> None:
        self.session = session
        self.endpoint = endpoint.rstrip("/")
        self.headers = {"Authorization": f"Bearer {token}"} if token else {}

    def url(self, path: str) -> str:
        return self.endpoint + path

    async def get(self, path: str, timeout: float) -> dict[str, Any]:
        """GET a JSON object; connection problems and non-200 answers raise."""
        async with self.session.get(
            self.url(path), headers=self.headers, timeout=aiohttp.ClientTimeout(total=timeout)
        ) as resp:
            raw = await resp.read()
            if resp.status != 200:
                raise openai_error_from_upstream(resp.status, raw)
            payload = json.loads(raw)
            if not isinstance(payload, dict):
                raise ValueError(f"{path} did not answer a JSON object")
            return payload

    async def post(self, path: str, body: dict[str, Any], timeout: float) -> dict[str, Any]:
        """POST JSON; an error answer becomes an ApiError carrying the neuron's reason."""
        try:
            async with self.session.post(
                self.url(path),
                json=body,
                headers=self.headers,
                timeout=aiohttp.ClientTimeout(total=timeout),
            ) as resp:
                raw = await resp.read()
                if resp.status >= 300:
                    raise openai_error_from_upstream(resp.status, raw)
                return json.loads(raw) if raw.strip() else {}
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise ApiError(502, f"neuron at {self.endpoint} failed: {describe_exc(exc)}") from exc

    async def load(self, model_id: str, devices: list[str] | None, timeout: float) -> dict:
        body: dict[str, Any] = {"model_id": model_id}
        if devices:
            body["devices"] = devices
        return await self.post("/models/load", body, timeout)

    async def unload(self, model_id: str, timeout: float, force: bool = False) -> dict:
        return await self.post("/models/unload", {"model_id": model_id, "force": force}, timeout)

    async def restart(self, timeout: float) -> dict:
        return await self.post("/admin/restart", {}, timeout)


def describe_exc(exc: BaseException) -> str:
    """A one-line reason for a network failure (some aiohttp errors have empty str())."""
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__

"""Cache-aware routing: a conversation goes back to the node that holds its prefix cache.

Agents resend the whole conversation every turn; the node that served the last
turn still has its KV blocks, so sending the next turn there skips re-reading it.
A conversation is recognised by the key its client sends (OpenAI `prompt_cache_key`
or `user`, Anthropic `metadata.user_id`, Codex's `session-id` header), otherwise by
a digest of how it starts (the system prompt and first user turn), which later turns
repeat. Affinity yields to the least-loaded node when the remembered one has more
than `margin` more requests in flight, and a node that went down, unloaded the
model or reloaded it (its cache is gone) is forgotten. A new conversation goes to
the least-loaded node, ties broken towards the one holding fewest conversations,
so sequential conversations spread over the replicas.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter, OrderedDict
from collections.abc import Mapping
from typing import Any

from cortex.fleet.nodes import Node

SESSION_HEADER = "session-id"  # Codex CLI
PROMPT_CHARS = 4096  # how much of a legacy completions prompt identifies its conversation


def conversation_key(body: Mapping[str, Any], headers: Mapping[str, str]) -> str | None:
    """The client's own conversation key, else a digest of the conversation's start."""
    metadata = body.get("metadata")
    user_id = metadata.get("user_id") if isinstance(metadata, dict) else None
    for name, value in (
        ("prompt_cache_key", body.get("prompt_cache_key")),
        ("session", headers.get(SESSION_HEADER)),
        ("user_id", user_id),
        ("user", body.get("user")),
    ):
        if isinstance(value, str) and value:
            return f"{name}:{value}"
    start = _conversation_start(body)
    if start is None:
        return None
    text = json.dumps(start, sort_keys=True, ensure_ascii=False, default=str)
    return "digest:" + hashlib.sha256(text.encode()).hexdigest()[:32]


def _conversation_start(body: Mapping[str, Any]) -> Any:
    """What every turn of a conversation begins with: instructions and the first user turn."""
    head = [body.get("system"), body.get("instructions")]
    turns = body.get("messages", body.get("input"))
    if isinstance(turns, list) and turns:
        for turn in turns:
            head.append(turn)
            if isinstance(turn, dict) and turn.get("role") == "user":
                break
        return head
    if isinstance(turns, str) and turns:
        return [*head, turns[:PROMPT_CHARS]]
    prompt = body.get("prompt")
    if isinstance(prompt, str) and prompt:
        return prompt[:PROMPT_CHARS]
    return None


class Affinity:
    """Which node served each conversation of each model, bounded (least recent dropped)."""

    def __init__(self, margin: int, capacity: int = 100_000) -> None:
        self.margin = margin
        self.capacity = capacity
        # (model, key) -> (node name, when the model was loaded there)
        self._served: OrderedDict[tuple[str, str], tuple[str, float | None]] = OrderedDict()
        self._conversations: Counter[tuple[str, str]] = Counter()  # (model, node) -> count

    def choose(self, model: str, key: str, holders: list[Node]) -> tuple[Node, str]:
        """The node for this turn and the outcome: "hit", "miss" or "override".

        `holders` are the nodes that can serve the model now, least in flight first.
        """
        load = _load(model)
        least = holders[0]
        remembered = self._served.get((model, key))
        node = None
        if remembered is not None:
            name, loaded_at = remembered
            node = next((n for n in holders if n.name == name), None)
            if node is None or _loaded_at(node, model) != loaded_at:
                self._forget(model, key)
                node = None
        if node is None:
            idle = [n for n in holders if load(n) == load(least)]
            node = min(idle, key=lambda n: self._conversations[(model, n.name)])
            outcome = "miss"
        elif load(node) - load(least) > self.margin:
            node, outcome = least, "override"
        else:
            outcome = "hit"
        self._remember(model, key, node)
        return node, outcome

    def conversations(self, model: str, node: str) -> int:
        return self._conversations[(model, node)]

    def _remember(self, model: str, key: str, node: Node) -> None:
        self._forget(model, key)
        self._served[(model, key)] = (node.name, _loaded_at(node, model))
        self._conversations[(model, node.name)] += 1
        if len(self._served) > self.capacity:
            (old_model, old_key), _ = next(iter(self._served.items()))
            self._forget(old_model, old_key)

    def _forget(self, model: str, key: str) -> None:
        found = self._served.pop((model, key), None)
        if found is not None:
            self._conversations[(model, found[0])] -= 1


def _load(model: str):
    return lambda node: node.inflight.get(model, 0)


def _loaded_at(node: Node, model: str) -> float | None:
    entry = node.models.get(model)
    return entry.loaded_at if entry is not None else None

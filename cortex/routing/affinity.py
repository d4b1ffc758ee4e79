"""Cache-aware routing: a conversation goes back to the node that holds its prefix cache.

Agents resend the whole conversation every turn; the node that served the last
turn still has its KV blocks, so sending the next turn there skips re-reading it.
A conversation is recognised by the key its client sends (OpenAI `prompt_cache_key`
or `user`, Anthropic `metadata.user_id`, Codex's `session-id` header), otherwise by
a digest of how it starts (the system prompt and first user turn), which later turns
repeat. Its node is chosen by rendezvous (highest-random-weight) hashing of that key
over the nodes holding the model, so every gateway picks the same node with no shared
table, conversations spread evenly, and only those of a node that leaves move. It
yields to the least-loaded node when its own has more than `margin` more requests in
flight (counting every gateway's, where they are shared).
"""

from __future__ import annotations

import hashlib
import json
from collections import OrderedDict
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
    # surrogatepass: any JSON string hashes, even a lone surrogate the neuron will refuse
    return "digest:" + hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:32]


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
    """Rendezvous choice of a conversation's node, and (for the metric only) a bounded
    memory of where this gateway last sent each conversation."""

    def __init__(self, margin: int, capacity: int = 100_000) -> None:
        self.margin = margin
        self.capacity = capacity
        # (model, key) -> (node name, when the model was loaded there)
        self._served: OrderedDict[tuple[str, str], tuple[str, float | None]] = OrderedDict()

    def choose(self, model: str, key: str, holders: list[Node]) -> tuple[Node, str]:
        """The node for this turn and the outcome: "hit" (the node this gateway sent the
        conversation to last, its cache still there), "miss" (new to this gateway, or its
        node left or reloaded the model) or "override" (its node was too busy).

        `holders` are the nodes that can serve the model now, least in flight first.
        """
        least = holders[0]
        home = max(holders, key=lambda n: rendezvous_weight(key, n.name))
        if home.load(model) - least.load(model) > self.margin:
            node, outcome = least, "override"
        else:
            node = home
            seen = self._served.get((model, key))
            outcome = "hit" if seen == (home.name, _loaded_at(home, model)) else "miss"
        self._remember(model, key, node)
        return node, outcome

    def _remember(self, model: str, key: str, node: Node) -> None:
        self._served.pop((model, key), None)
        self._served[(model, key)] = (node.name, _loaded_at(node, model))
        if len(self._served) > self.capacity:
            self._served.popitem(last=False)


def rendezvous_weight(key: str, node: str) -> int:
    """The node's weight for the conversation: the highest-weighted holder serves it."""
    digest = hashlib.blake2b(f"{key}\0{node}".encode("utf-8", "surrogatepass"), digest_size=8)
    return int.from_bytes(digest.digest(), "big")


def _loaded_at(node: Node, model: str) -> float | None:
    entry = node.models.get(model)
    return entry.loaded_at if entry is not None else None

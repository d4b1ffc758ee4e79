"""Conversation keys chosen for their node: tests that need a request to go to a given
replica first send a key whose rendezvous node (cortex.routing.affinity) is that one."""

from __future__ import annotations

from collections.abc import Iterable

from cortex.routing.affinity import rendezvous_weight


def key_homing_on(home: str, nodes: Iterable[str], kind: str = "user", stem: str = "c") -> str:
    """A value for the request's `kind` of key (`user`, `prompt_cache_key`, Anthropic's
    `user_id`) whose conversation goes to `home` among `nodes` while they are idle."""
    names = list(nodes)
    for i in range(1000):
        value = f"{stem}-{i}"
        if max(names, key=lambda n: rendezvous_weight(f"{kind}:{value}", n)) == home:
            return value
    raise AssertionError(f"no key goes to {home} among {names}")

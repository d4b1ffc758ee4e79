"""Compile grammars for one model, off the event loop, cached and time-bounded.

The compile runs in a small thread pool (xgrammar releases the GIL while it works), so
neither the asyncio loop nor the device thread that steps every sequence ever waits on
it. xgrammar's own cache, keyed by the grammar source, makes a repeated schema free.
A compile that outlives `COMPILE_TIMEOUT` is refused; its thread finishes in the
background and still fills the cache.
"""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from neuron.grammar.formats import GrammarSpec

if TYPE_CHECKING:
    import xgrammar

COMPILE_TIMEOUT = 10.0  # seconds
CACHE_BYTES = 256 * 1024 * 1024
_POOL = ThreadPoolExecutor(max_workers=2, thread_name_prefix="grammar")


class GrammarError(ValueError):
    """The library cannot compile this grammar (the message says why), or not in time."""


def tokenizer_info(tokenizer: Any, vocab_size: int) -> xgrammar.TokenizerInfo:
    """xgrammar's view of our `tokenizers` backend: every token's text, by id."""
    import xgrammar

    backend = tokenizer.backend
    vocab = backend.get_vocab(with_added_tokens=True)
    encoded = [""] * max(vocab_size, max(vocab.values()) + 1)
    for token, index in vocab.items():
        encoded[index] = token
    meta = xgrammar.TokenizerInfo._detect_metadata_from_hf(backend.to_str())
    return xgrammar.TokenizerInfo(
        encoded[:vocab_size],
        meta["vocab_type"],
        vocab_size=vocab_size,
        stop_token_ids=sorted(tokenizer.eos_token_ids),
        add_prefix_space=meta["add_prefix_space"],
    )


class ModelGrammars:
    """One model's compiler, built on first use (importing xgrammar takes a while)."""

    def __init__(self, tokenizer: Any, vocab_size: int) -> None:
        self._tokenizer = tokenizer
        self._vocab_size = vocab_size
        self._compiler: xgrammar.GrammarCompiler | None = None
        self._lock = threading.Lock()

    def compile_now(self, spec: GrammarSpec) -> xgrammar.CompiledGrammar:
        """Compile on the calling thread; GrammarError names what the library rejected."""
        compiler = self._get_compiler()
        try:
            if spec.kind == "json_object":
                return compiler.compile_json_schema(
                    {"type": "object"}, any_whitespace=False, strict_mode=False
                )
            if spec.kind == "json_schema":
                return compiler.compile_json_schema(spec.source, any_whitespace=False)
            return compiler.compile_structural_tag(spec.source)
        except (RuntimeError, ValueError, TypeError) as exc:
            raise GrammarError(_reason(exc)) from None

    async def compile(self, spec: GrammarSpec) -> xgrammar.CompiledGrammar:
        """Compile in the pool; GrammarError if it fails or takes over COMPILE_TIMEOUT
        (the model's one-time setup before its first compile is not counted)."""
        loop = asyncio.get_running_loop()
        if self._compiler is None:  # first use: the library import and vocabulary table
            await loop.run_in_executor(_POOL, self._get_compiler)
        work = loop.run_in_executor(_POOL, self.compile_now, spec)
        try:
            return await asyncio.wait_for(asyncio.shield(work), COMPILE_TIMEOUT)
        except TimeoutError:
            raise GrammarError(
                f"the grammar took longer than {COMPILE_TIMEOUT:g} s to compile; "
                "simplify the schema"
            ) from None

    def _get_compiler(self) -> xgrammar.GrammarCompiler:
        with self._lock:
            if self._compiler is None:
                import xgrammar

                info = tokenizer_info(self._tokenizer, self._vocab_size)
                self._compiler = xgrammar.GrammarCompiler(
                    info, max_threads=2, cache_limit_bytes=CACHE_BYTES
                )
            return self._compiler


def _reason(exc: Exception) -> str:
    """The library's message without its C++ source location prefix."""
    text = str(exc).strip()
    head, sep, rest = text.partition(": ")
    if sep and head.startswith("[") and ".cc:" in head:
        text = rest.strip()
    return text.splitlines()[0] if text else type(exc).__name__

"""The continuous-batching engine of one model on one device.

Everything here runs on the device's worker thread: `add`, `abort` and `step`
are called between forward passes, so a request joins or leaves a running batch
at the next step. Each step schedules one pass, runs it, and turns the sampled
tokens into text increments with stop handling.
"""

from __future__ import annotations

import functools
import secrets
from typing import TYPE_CHECKING

import torch

from neuron.engine.block_manager import BlockManager
from neuron.engine.constraints import Constraint
from neuron.engine.model_runner import ModelRunner, Sampled
from neuron.engine.records import EngineRequest, EngineStats, RequestOutput, TokenLogprob
from neuron.engine.sampler import SampledLogprobs
from neuron.engine.scheduler import Scheduler
from neuron.engine.sequence import Sequence
from neuron.models.attention import KVCache, kv_cache_dtype
from neuron.models.config import ModelConfig
from neuron.text.detokenizer import StreamDetokenizer
from neuron.text.reasoning import BUDGET_CLOSE, ThinkBudget
from neuron.text.stop import StopMatcher

if TYPE_CHECKING:
    from neuron.models.loader import LoadedModel

SEED_MASK = (1 << 63) - 1  # seeds travel as int64


class Engine:
    def __init__(
        self,
        loaded: LoadedModel,
        num_blocks: int,
        block_size: int = 16,
        max_batch_size: int = 32,
        max_prefill_tokens: int = 2048,
        max_model_len: int | None = None,
        prefix_cache: bool = True,
        compile_cpu_decode: bool = False,
    ) -> None:
        config = loaded.config
        limits = {
            "num_blocks": num_blocks,
            "block_size": block_size,
            "max_batch_size": max_batch_size,
            "max_prefill_tokens": max_prefill_tokens,
            "max_model_len": max_model_len,
        }
        for name, value in limits.items():
            if value is not None and value < 1:
                raise ValueError(f"{name} must be at least 1, got {value}")
        if max_model_len is not None and max_model_len > config.max_position_embeddings:
            raise ValueError(
                f"max_model_len {max_model_len} exceeds the model's "
                f"{config.max_position_embeddings} positions"
            )
        self.config = config
        self.tokenizer = loaded.tokenizer
        self.eos_token_ids = loaded.eos_token_ids
        # Salted by the weights' source: two models never share a block.
        self.block_manager = BlockManager(
            num_blocks, block_size, prefix_cache, salt=f"{loaded.source}:{loaded.dtype}"
        )
        self.cache_tokens = num_blocks * block_size
        # The longest sequence served: the context length, cut to what the cache holds.
        self.max_model_len = min(max_model_len or config.max_position_embeddings, self.cache_tokens)
        self.kv_cache = KVCache(
            config.num_hidden_layers,
            num_blocks,
            block_size,
            config.num_key_value_heads,
            config.head_dim,
            kv_cache_dtype(loaded.dtype, loaded.device, config.head_dim),
            loaded.device,
        )
        self.scheduler = Scheduler(self.block_manager, max_batch_size, max_prefill_tokens)
        self.runner = ModelRunner(loaded.model, self.kv_cache, compile_cpu_decode)
        self._seqs: dict[str, Sequence] = {}
        self._next_seq_id = 0

    @staticmethod
    def blocks_for_bytes(
        config: ModelConfig, dtype: torch.dtype, budget_bytes: int, block_size: int = 16
    ) -> int:
        """How many cache blocks of elements of `dtype` (the cache's: `kv_cache_dtype`) fit
        in `budget_bytes`."""
        per_block = KVCache.bytes_per_block(
            config.num_hidden_layers, block_size, config.num_key_value_heads, config.head_dim, dtype
        )
        return max(0, budget_bytes // per_block)

    def add(self, request: EngineRequest) -> None:
        """Queue a request; ValueError (with the numbers) if it can never be served."""
        params = request.params
        params.validate(self.config.vocab_size)
        prompt = request.prompt_ids
        if request.request_id in self._seqs:
            raise ValueError(f"request id {request.request_id!r} is already in use")
        if not prompt:
            raise ValueError("the prompt must contain at least one token")
        bad = [t for t in prompt if not 0 <= t < self.config.vocab_size]
        if bad:
            raise ValueError(
                f"prompt token id {bad[0]} is outside the vocabulary (0..{self.config.vocab_size - 1})"
            )
        total = len(prompt) + (0 if request.pool is not None else params.max_tokens)
        if total > self.max_model_len:
            limit = (
                f"the KV cache holds {self.cache_tokens} tokens"
                if self.max_model_len == self.cache_tokens
                else f"the maximum context length is {self.max_model_len} tokens"
            )
            asked = (
                f"{len(prompt)} input tokens"
                if request.pool is not None
                else f"{len(prompt)} prompt tokens + {params.max_tokens} max_tokens = {total} tokens"
            )
            raise ValueError(f"{asked}, but {limit}")
        seed = secrets.randbits(63) if params.seed is None else params.seed & SEED_MASK
        constraint = Constraint.build(
            request.grammar, request.grammar_prefix, params.logit_bias, self.eos_token_ids
        )
        seq = Sequence(
            self._next_seq_id,
            request,
            seed,
            StreamDetokenizer(self.tokenizer, prompt),
            StopMatcher(params.stop),
            constraint,
        )
        if params.thinking_budget is not None:
            seq.think_budget = ThinkBudget(params.thinking_budget, params.think_in_prompt)
        self._next_seq_id += 1
        self._seqs[request.request_id] = seq
        self.scheduler.add(seq)

    def abort(self, request_id: str) -> RequestOutput | None:
        """Stop a request now and free its blocks; None if it is not here."""
        seq = self._seqs.pop(request_id, None)
        if seq is None:
            return None
        self.scheduler.finish(seq)
        seq.finish("abort")
        return seq.take_output("")

    def step(self) -> list[RequestOutput]:
        """Run one scheduled pass; an output for each sequence with new text or an end."""
        batch = self.scheduler.schedule()
        if batch is None:
            return []
        sampled = self.runner.run(batch)
        pooled: list[RequestOutput] = []
        for seq, chunk in zip(batch.seqs, batch.chunk_sizes, strict=True):
            self.block_manager.commit(seq, chunk)
            if seq.pool is not None and seq.num_uncomputed == 0:
                pooled.append(self._pooled(seq))
        outputs = [self._accept(row) for row in sampled]
        return pooled + [out for out in outputs if out is not None]

    def _pooled(self, seq: Sequence) -> RequestOutput:
        """A pooled sequence's vector once its last token is in; its blocks go at once."""
        request, model = seq.pool.request, self.runner.model
        head = None
        if request.classify:
            head = model.classifier
        elif request.score_ids:
            head = model.head_rows(list(request.score_ids))
        vector = seq.pool.result(head)
        seq.finish("stop")
        self.scheduler.finish(seq)
        del self._seqs[seq.request_id]
        return seq.take_output("", vector)

    def has_work(self) -> bool:
        return self.scheduler.has_work()

    def stats(self) -> EngineStats:
        blocks, compiled = self.block_manager, self.runner.compiled
        return EngineStats(
            running=len(self.scheduler.running),
            waiting=len(self.scheduler.waiting),
            free_blocks=blocks.num_free,
            total_blocks=blocks.num_blocks,
            block_size=blocks.block_size,
            prefix_cache=blocks.prefix_cache,
            cached_blocks=blocks.num_cached,
            prefix_queried_tokens=blocks.queried_tokens,
            prefix_hit_tokens=blocks.hit_tokens,
            compiled_decode=compiled.state if compiled is not None else "off",
        )

    def _accept(self, row: Sampled) -> RequestOutput | None:
        """Append a sampled token, decide whether the sequence ends, and emit its text."""
        seq, token, params = row.seq, row.token_id, row.seq.params
        logprob = None if row.logprobs is None else self._logprob(token, row.logprobs)
        if seq.forced:  # closing a think block whose budget is spent
            token, logprob = seq.forced.pop(0), None
        seq.append_token(token, logprob)
        # A finished grammar ends the reply; a rejected token cannot happen under the
        # mask, but would end it too rather than let it go on outside the grammar.
        grammar_done = seq.constraint is not None and (
            not seq.constraint.accept(token) or seq.constraint.finished
        )
        if (
            grammar_done
            or token in params.stop_token_ids
            or (not params.ignore_eos and token in self.eos_token_ids)
        ):
            # A stop token's own text is not part of the output; held-back text is.
            seq.finish("stop", token)
            text = seq.stop_matcher.flush()
        else:
            piece = seq.detokenizer.step(token)
            self._count_reasoning(seq, piece)
            text, matched = seq.stop_matcher.feed(piece)
            if matched is not None:
                seq.finish("stop", matched)
            elif seq.constraint is not None and seq.constraint.closed:
                seq.finish("stop")  # the document is complete: nothing is left to write
                text += seq.stop_matcher.flush()
            elif seq.num_completion_tokens >= params.max_tokens:
                seq.finish("length")
                text += seq.stop_matcher.flush()
        if seq.is_finished:
            self.scheduler.finish(seq)
            del self._seqs[seq.request_id]
        if text or seq.is_finished:
            return seq.take_output(text)
        return None

    def _count_reasoning(self, seq: Sequence, piece: str) -> None:
        """Past the thinking budget, the next tokens close the block instead of sampling."""
        if seq.think_budget is not None and seq.think_budget.feed(piece):
            seq.think_budget.closed()
            seq.forced = list(self._budget_close_ids)

    @functools.cached_property
    def _budget_close_ids(self) -> list[int]:
        return self.tokenizer.encode(BUDGET_CLOSE, add_bos=False)

    def _logprob(self, token: int, sampled: SampledLogprobs) -> TokenLogprob:
        """Attach token texts; special tokens keep their names (a client asked for them)."""
        text = functools.partial(self.tokenizer.decode, skip_special_tokens=False)
        top = [(t, text([t]), lp) for t, lp in sampled.top]
        return TokenLogprob(token, text([token]), sampled.logprob, top)

"""One request's state inside the engine.

The token list holds prompt and output together: a preempted sequence is
recomputed by prefilling all of it (less what the prefix cache still holds), and
the sampling offset (tokens generated so far) survives, so its continuation is the
same as if it had never been evicted.
"""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING

from neuron.engine.records import EngineRequest, RequestOutput, TokenLogprob
from neuron.models.pooling import PoolState

if TYPE_CHECKING:
    from neuron.engine.constraints import Constraint
    from neuron.text.detokenizer import StreamDetokenizer
    from neuron.text.reasoning import ThinkBudget
    from neuron.text.stop import StopMatcher


class SequenceStatus(enum.Enum):
    WAITING = "waiting"
    RUNNING = "running"
    FINISHED = "finished"


class Sequence:
    def __init__(
        self,
        seq_id: int,
        request: EngineRequest,
        seed: int,
        detokenizer: StreamDetokenizer,
        stop_matcher: StopMatcher,
        constraint: Constraint | None = None,
    ) -> None:
        self.seq_id = seq_id  # arrival order: the youngest is preempted first
        self.request_id = request.request_id
        self.params = request.params
        self.token_ids = list(request.prompt_ids)
        self.num_prompt_tokens = len(self.token_ids)
        self.status = SequenceStatus.WAITING
        self.block_table: list[int] = []
        self.num_cached_tokens = 0  # tokens whose keys and values are in the cache
        self.block_keys: list[bytes] = []  # prefix-cache keys of its leading full blocks
        self.prompt_cache_hit: int | None = None  # prompt tokens found cached when first admitted
        self.seed = seed
        self.detokenizer = detokenizer
        self.stop_matcher = stop_matcher
        self.constraint = constraint  # grammar and/or logit bias; None for a free sequence
        self.finish_reason: str | None = None
        self.stop_reason: str | int | None = None
        self._pending_ids: list[int] = []
        self._pending_logprobs: list[TokenLogprob] = []
        self.think_budget: ThinkBudget | None = None
        self.forced: list[int] = []  # tokens the engine appends instead of sampling
        # A pooled (embedding, scoring) request: prefill only, then it ends.
        self.pool = PoolState(request.pool) if request.pool is not None else None

    @property
    def reads_cached_prefix(self) -> bool:
        """Whether cached leading blocks may stand in for computing them: not when the
        pooling needs every token's hidden state (mean, cls)."""
        return self.pool is None or self.pool.last_row_only

    @property
    def num_tokens(self) -> int:
        return len(self.token_ids)

    @property
    def num_completion_tokens(self) -> int:
        return len(self.token_ids) - self.num_prompt_tokens

    @property
    def num_uncomputed(self) -> int:
        """Tokens still to run through the model; 1 means the sequence is decoding."""
        return len(self.token_ids) - self.num_cached_tokens

    @property
    def is_finished(self) -> bool:
        return self.status is SequenceStatus.FINISHED

    def append_token(self, token_id: int, logprob: TokenLogprob | None) -> None:
        self.token_ids.append(token_id)
        self._pending_ids.append(token_id)
        if logprob is not None:
            self._pending_logprobs.append(logprob)

    def finish(self, reason: str, stop_reason: str | int | None = None) -> None:
        self.status = SequenceStatus.FINISHED
        self.finish_reason = reason
        self.stop_reason = stop_reason

    def take_output(self, text: str, vector: list[float] | None = None) -> RequestOutput:
        """Package the text and tokens produced since the previous output."""
        output = RequestOutput(
            request_id=self.request_id,
            text=text,
            token_ids=self._pending_ids,
            finished=self.is_finished,
            finish_reason=self.finish_reason,
            stop_reason=self.stop_reason,
            prompt_tokens=self.num_prompt_tokens,
            cached_tokens=self.prompt_cache_hit or 0,
            completion_tokens=self.num_completion_tokens,
            logprobs=self._pending_logprobs if self.params.logprobs is not None else None,
            vector=vector,
        )
        self._pending_ids = []
        self._pending_logprobs = []
        return output

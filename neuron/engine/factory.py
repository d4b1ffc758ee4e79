"""Build a model's engine on its device thread: load the weights, size the KV cache.

Runs inside a DeviceWorker job. Only `ModelFacts` (plain values plus the
tokenizer and chat template, which hold no tensors) go back to the asyncio side.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from neuron.config import NeuronConfig
from neuron.devices import Device
from neuron.engine.engine import Engine
from neuron.grammar.compiler import ModelGrammars
from neuron.models.attention import kv_cache_dtype
from neuron.models.errors import ModelLoadError
from neuron.models.loader import load_model
from neuron.models.pooling import Pooling, override
from neuron.text.chat_template import ChatTemplate
from neuron.text.fim import FimFormat, detect_fim
from neuron.text.judge import Judge, PairClassifier, detect_judge
from neuron.text.tokenizer import Tokenizer

_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


@dataclass
class ModelFacts:
    """What the API needs to know about a loaded model, without its tensors."""

    tokenizer: Tokenizer
    chat_template: ChatTemplate | None
    context_length: int
    vocab_size: int
    memory_bytes: int
    kv_blocks: int
    generation_defaults: dict[str, float | int]
    source: str
    format: str
    grammars: ModelGrammars  # compiles this model's constrained-decoding grammars
    weight_format: str  # how the weights are held, e.g. "int4 layers, int8 vocabulary"
    dtype: str  # what the model computes in
    kv_cache_dtype: str  # what the KV cache holds (`kv_cache_dtype`: fp16 for fp32 on CPU)
    hidden_size: int  # an embedding's length
    pooling: Pooling
    fim: FimFormat | None  # its fill-in-the-middle tokens, if it has them
    judge: Judge | None  # how it scores relevance, if it reranks
    generates: bool = True  # False for a classifier checkpoint: it has no LM head
    experts: int = 0  # a mixture of experts': experts per routed layer (all resident)
    active_experts: int = 0  # and how many of them each token runs through

    @property
    def capabilities(self) -> list[str]:
        """What it can serve: every decoder embeds (its hidden states, pooled)."""
        found = {
            "chat": self.generates and self.chat_template is not None,
            "embeddings": True,
            "rerank": self.judge is not None,
            "fim": self.generates and self.fim is not None,
        }
        return [name for name, has in found.items() if has]


def kv_budget_bytes(config: NeuronConfig, device: Device) -> int:
    """The KV cache budget: a fraction of free GPU memory (after the weights), or MB on CPU."""
    if device.kind == "cuda":
        free, _total = torch.cuda.mem_get_info(device.index)
        return int(free * config.kv_cache_memory_fraction)
    return config.cpu_kv_cache_mb * 1024 * 1024


def build_engine(
    config: NeuronConfig,
    model_id: str,
    device: Device,
    dtype: str,
    max_context: int | None,
    prefix_cache: bool = True,
    pooling: str | None = None,
    gpu_quantization: str | None = None,
) -> tuple[Engine, ModelFacts]:
    if dtype not in _DTYPES:
        raise ModelLoadError("invalid", f"unknown dtype {dtype!r} (use {', '.join(_DTYPES)})")
    torch_dtype = _DTYPES[dtype]
    loaded = load_model(
        model_id,
        device.torch_device,
        torch_dtype,
        models_dir=config.models_dir,
        hf_cache=config.hf_cache,
        allow_download=config.allow_download,
        quantization=config.cpu_quantization if device.kind == "cpu" else "none",
        gpu_quantization=gpu_quantization or config.gpu_quantization,
    )
    context = loaded.config.max_position_embeddings
    if max_context is not None:
        context = min(context, max_context)
    # Never reserve more KV than a full batch of full-length sequences can use.
    useful = config.max_batch_size * math.ceil(context / config.block_size)
    budget = kv_budget_bytes(config, device)
    kv_dtype = kv_cache_dtype(loaded.dtype, loaded.device, loaded.config.head_dim)
    blocks = min(
        useful, Engine.blocks_for_bytes(loaded.config, kv_dtype, budget, config.block_size)
    )
    if blocks < 1:
        raise ModelLoadError(
            "out_of_memory", f"no memory left for a KV cache on {device.id} after the weights"
        )
    context = min(context, blocks * config.block_size)
    engine = Engine(
        loaded,
        num_blocks=blocks,
        block_size=config.block_size,
        max_batch_size=config.max_batch_size,
        max_prefill_tokens=config.max_prefill_tokens,
        max_model_len=context,
        prefix_cache=prefix_cache,
        compile_cpu_decode=config.cpu_compile,
    )
    tok = loaded.tokenizer
    classifier = getattr(loaded.model, "classifier", None) is not None
    template = None
    if loaded.chat_template:
        template = ChatTemplate(loaded.chat_template, tok.bos_token, tok.eos_token)
    facts = ModelFacts(
        tokenizer=tok,
        chat_template=template,
        context_length=engine.max_model_len,
        vocab_size=loaded.config.vocab_size,
        memory_bytes=loaded.nbytes + engine.kv_cache.nbytes,
        kv_blocks=blocks,
        generation_defaults=dict(loaded.generation_defaults),
        source=str(loaded.source),
        format=loaded.format,
        grammars=ModelGrammars(tok, loaded.config.vocab_size),
        weight_format=loaded.weight_format,
        dtype=str(loaded.dtype).removeprefix("torch."),
        kv_cache_dtype=str(engine.kv_cache.data.dtype).removeprefix("torch."),
        hidden_size=loaded.config.hidden_size,
        pooling=override(loaded.pooling, pooling),
        fim=detect_fim(tok),
        judge=PairClassifier() if classifier else detect_judge(loaded.source, tok),
        generates=not classifier,
        experts=loaded.config.num_experts,
        active_experts=loaded.config.num_experts_per_tok,
    )
    return engine, facts

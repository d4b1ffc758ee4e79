"""Turn a model id or path into a ready decoder, tokenizer and defaults on one device.

Runs on the device's worker thread: every tensor it creates lives there.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import torch

from neuron.models import awq_gptq, gguf_io
from neuron.models.classifier import HeadTaker, classifier_config, is_classifier
from neuron.models.config import ModelConfig
from neuron.models.errors import ModelLoadError
from neuron.models.llama import LlamaForCausalLM
from neuron.models.pooling import Pooling, folder_pooling, gguf_pooling
from neuron.models.resolve import AvailableModel, ModelSource, resolve_model
from neuron.models.safetensors_io import iter_safetensors
from neuron.models.weight_format import (
    CHOICES,
    GPU_CHOICES,
    SourceWeights,
    gpu_plan,
    materialize,
    pack,
    pack_gpu,
)
from neuron.text.tokenizer import Tokenizer

__all__ = ["LoadedModel", "ModelLoadError", "load_model", "parse_dtype", "register_architecture"]

# Builds (config, model) for a Hugging Face folder whose architecture is not the Llama family.
ArchitectureBuilder = Callable[
    [Path, dict[str, Any], Tokenizer, torch.device, torch.dtype],
    tuple[ModelConfig, torch.nn.Module],
]
_BUILDERS: dict[str, ArchitectureBuilder] = {}

_DTYPES = {
    "float32": torch.float32,
    "fp32": torch.float32,
    "bfloat16": torch.bfloat16,
    "bf16": torch.bfloat16,
    "float16": torch.float16,
    "fp16": torch.float16,
}
# Sampling keys of generation_config.json (and GGUF's general.sampling.*) that serve as
# per-model defaults for requests that leave them out.
_GENERATION_KEYS = ("temperature", "top_p", "top_k", "min_p", "repetition_penalty")
_GGUF_SAMPLING = {"temp": "temperature", "top_p": "top_p", "top_k": "top_k", "min_p": "min_p"}


@dataclass
class LoadedModel:
    model_id: str
    config: ModelConfig
    model: LlamaForCausalLM
    tokenizer: Tokenizer
    chat_template: str | None
    source: Path
    format: str
    device: torch.device
    dtype: torch.dtype
    nbytes: int
    generation_defaults: dict[str, float | int] = field(default_factory=dict)
    weight_format: str = ""  # e.g. "float32", "int4 layers, int8 vocabulary"
    pooling: Pooling = field(default_factory=Pooling)  # how its embeddings are pooled

    @property
    def eos_token_ids(self) -> frozenset[int]:
        """Every id that ends a generation: the configs' and the tokenizer's."""
        return self.tokenizer.eos_token_ids | frozenset(self.config.eos_token_ids)


def register_architecture(name: str, builder: ArchitectureBuilder) -> None:
    """Serve folders whose config.json `architectures[0]` is `name` with `builder`.

    The hook for architectures that live outside this package (an embedding of the
    daemon registers them before it starts serving).
    """
    _BUILDERS[name] = builder


def parse_dtype(dtype: torch.dtype | str | None, device: torch.device) -> torch.dtype:
    """A dtype from its name; None picks bf16 on GPU and fp32 on CPU."""
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype is None or dtype == "auto":
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    if dtype not in _DTYPES:
        raise ModelLoadError(
            "unsupported", f"unsupported dtype {dtype!r}; use one of {sorted(_DTYPES)}"
        )
    return _DTYPES[dtype]


def load_model(
    model_id_or_path: str,
    device: torch.device | str = "cpu",
    dtype: torch.dtype | str | None = None,
    models_dir: Path | None = None,
    hf_cache: Path | None = None,
    allow_download: bool = False,
    quantization: str = "none",
    gpu_quantization: str = "auto",
    pack_as: str | None = None,
) -> LoadedModel:
    """Resolve, read and place a model; every failure is a ModelLoadError.

    quantization (CPU only; see neuron/models/weight_format.py) packs the matmul
    weights: packed models keep norms, the residual and attention in fp32 whatever
    `dtype` says. "auto" packs only
    what a GGUF stores quantised; a Hugging Face folder stays as `dtype` says.
    gpu_quantization (CUDA): "auto" keeps quantised weights packed as int4 / int8, "none"
    dequantises them. `pack_as="cuda"` gives any device the CUDA form (tests, benches).
    """
    device = torch.device(device)
    dtype = parse_dtype(dtype, device)
    if quantization not in CHOICES:
        raise ModelLoadError(
            "unsupported", f"unsupported quantization {quantization!r}; use one of {CHOICES}"
        )
    if gpu_quantization not in GPU_CHOICES:
        raise ModelLoadError(
            "unsupported",
            f"unsupported gpu_quantization {gpu_quantization!r}; use one of {GPU_CHOICES}",
        )
    gpu_form = gpu_quantization == "auto" and (pack_as or device.type) == "cuda"
    if pack_as is not None:
        quantization = "none"
    if quantization not in ("none", "auto") and device.type != "cpu":
        raise ModelLoadError("unsupported", f"packed weights are a CPU path, not for {device}")
    source = resolve_model(model_id_or_path, models_dir, hf_cache, allow_download)
    if quantization == "auto" and (source.format != "gguf" or device.type != "cpu"):
        quantization = "none"
    weights = SourceWeights() if quantization != "none" else None
    load_dtype = dtype if weights is None else torch.float32
    try:
        if source.format == "gguf":
            loaded = _load_gguf(source, device, load_dtype, weights, gpu_form)
        else:
            loaded = _load_hf(source, device, load_dtype, gpu_form)
    except torch.cuda.OutOfMemoryError as exc:
        raise ModelLoadError("out_of_memory", f"not enough memory on {device}: {exc}") from exc
    if not loaded.weight_format:
        loaded.weight_format = str(dtype).removeprefix("torch.")
    if weights is not None:
        if not isinstance(loaded.model, LlamaForCausalLM):
            raise ModelLoadError("unsupported", f"{loaded.model_id} cannot hold packed weights")
        loaded.weight_format = pack(loaded.model, quantization, weights)
        loaded.dtype, loaded.nbytes = loaded.model.act_dtype, loaded.model.nbytes
    return loaded


def _build(
    config: ModelConfig,
    weights: Iterable[tuple[str, torch.Tensor]],
    device: torch.device,
    dtype: torch.dtype,
) -> LlamaForCausalLM:
    _check_fits(config, device, dtype)
    model = LlamaForCausalLM(config, dtype, device)
    model.load_weights(weights)
    return model.eval()


def _check_fits(config: ModelConfig, device: torch.device, dtype: torch.dtype) -> None:
    """Refuse a load that cannot fit before allocating anything (sized on the meta device)."""
    _check_room(LlamaForCausalLM(config, dtype, "meta").nbytes, device)


def _packed_need(model: LlamaForCausalLM, keep: frozenset[str], packed: dict[str, int]) -> int:
    """Bytes of `model` (on the meta device) once the weights in `keep` are packed."""
    slots = model.weight_slots()
    dense = sum(slots[n].numel() * slots[n].element_size() for n in keep if n in slots)
    return model.nbytes - dense + sum(packed[n] for n in keep)


def _build_packed(
    config: ModelConfig,
    packable: dict[str, int],
    weights: Callable[[SourceWeights], Iterable[tuple[str, torch.Tensor]]],
    device: torch.device,
    dtype: torch.dtype,
) -> tuple[LlamaForCausalLM, str]:
    """The model with the tensors `packable` names (name → packed bytes) kept packed in
    the GPU form, never dense on the device: built on the meta device, the rest filled
    from `weights(source)`, which hands the packed ones over in `source.packed`."""
    model = LlamaForCausalLM(config, dtype, "meta")
    keep, fallback = gpu_plan(model, packable)
    _check_room(_packed_need(model, keep, packable), device)
    materialize(model, device, keep)
    source = SourceWeights(keep=keep)
    model.load_weights(weights(source))
    return model.eval(), pack_gpu(model, source, fallback)


def _check_room(need: int, device: torch.device) -> None:
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
    else:
        free = psutil.virtual_memory().available
    if need > free:
        raise ModelLoadError(
            "out_of_memory",
            f"the weights need {need / 2**30:.1f} GiB but {device} has {free / 2**30:.1f} GiB free",
        )


def _read_json(path: Path, required: bool) -> dict[str, Any]:
    if not path.is_file():
        if required:
            raise ModelLoadError("invalid", f"model folder {path.parent} has no {path.name}")
        return {}
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise ModelLoadError("invalid", f"{path} is not valid JSON: {exc}") from exc


def _read_tokenizer(build: Callable[[], Tokenizer], where: Path) -> Tokenizer:
    try:
        return build()
    except Exception as exc:  # `tokenizers` raises a bare Exception for a malformed file
        raise ModelLoadError("invalid", f"cannot read the tokenizer of {where}: {exc}") from exc


def _load_hf(
    source: ModelSource, device: torch.device, dtype: torch.dtype, gpu_form: bool = False
) -> LoadedModel:
    folder = source.path
    raw = _read_json(folder / "config.json", required=True)
    builder = _BUILDERS.get((raw.get("architectures") or [""])[0])
    if builder is not None:
        tokenizer = _read_tokenizer(lambda: Tokenizer.from_hf_folder(folder), folder)
        config, model = builder(folder, raw, tokenizer, device, dtype)
        return _loaded(source, config, model, tokenizer, {}, device, dtype)
    config = ModelConfig.from_hf_dict(raw)
    rule = awq_gptq.scheme(raw, source.model_id)
    heads = HeadTaker() if is_classifier(raw) else None
    if heads is not None:
        config = classifier_config(config)
    if not (folder / "tokenizer.json").is_file():
        raise ModelLoadError("invalid", f"model folder {folder} has no tokenizer.json")
    tokenizer = _read_tokenizer(lambda: Tokenizer.from_hf_folder(folder), folder / "tokenizer.json")
    generation = _read_json(folder / "generation_config.json", required=False)
    defaults = {k: generation[k] for k in _GENERATION_KEYS if generation.get(k) is not None}
    if rule is None:
        weights = iter_safetensors(folder)
        model = _build(config, heads.filter(weights) if heads else weights, device, dtype)
        weight_format = ""
    else:  # AWQ / GPTQ: packed on the GPU, dequantised to `dtype` elsewhere.
        packable = awq_gptq.packed_sizes(folder) if gpu_form else {}
        model, weight_format = _build_packed(
            config,
            packable,
            lambda into: awq_gptq.iter_quantised(folder, rule, into, source.model_id),
            device,
            dtype,
        )
    if heads is not None:
        model.classifier = heads.take(config.hidden_size).to(device, torch.float32)
    loaded = _loaded(source, config, model, tokenizer, defaults, device, dtype)
    loaded.pooling = folder_pooling(folder)
    loaded.weight_format = weight_format
    return loaded


def _load_gguf(
    source: ModelSource,
    device: torch.device,
    dtype: torch.dtype,
    weights: SourceWeights | None = None,
    gpu_form: bool = False,
) -> LoadedModel:
    reader = gguf_io.open_gguf(source.path)
    config, model, weight_format = gguf_model(reader, device, dtype, weights, gpu_form)
    meta = gguf_io.gguf_metadata(reader)
    tokenizer = _read_tokenizer(lambda: Tokenizer.from_gguf(reader), source.path)
    defaults = {
        ours: meta[f"general.sampling.{key}"]
        for key, ours in _GGUF_SAMPLING.items()
        if f"general.sampling.{key}" in meta
    }
    loaded = _loaded(source, config, model, tokenizer, defaults, device, dtype)
    loaded.pooling = gguf_pooling(meta, str(meta.get("general.architecture", "")))
    loaded.weight_format = weight_format
    return loaded


def gguf_model(
    reader: gguf_io.gguf.GGUFReader,
    device: torch.device,
    dtype: torch.dtype,
    weights: SourceWeights | None = None,
    gpu_form: bool = False,
) -> tuple[ModelConfig, LlamaForCausalLM, str]:
    """A GGUF's decoder (no tokenizer): dense, or in the GPU's packed form (`gpu_form`,
    with its weight format's name; "" when dense)."""
    gguf_io.check_tensor_types(reader)
    meta = gguf_io.gguf_metadata(reader)
    config = ModelConfig.from_gguf_metadata(meta, (t.name for t in reader.tensors))

    def tensors(into: SourceWeights | None) -> Iterable[tuple[str, torch.Tensor]]:
        heads, kv_heads = config.num_attention_heads, config.num_key_value_heads
        return gguf_io.iter_gguf(reader, config.architecture, heads, kv_heads, into)

    if gpu_form:
        packable = gguf_io.packed_sizes(reader)
        return config, *_build_packed(config, packable, tensors, device, dtype)
    return config, _build(config, tensors(weights), device, dtype), ""


def gguf_gpu_bytes(path: Path, dtype: torch.dtype = torch.bfloat16) -> int:
    """The weights' bytes on a GPU with `gpu_quantization = "auto"`, from the file's
    header alone: what placement plans with when a profile gives no `vram_mb`."""
    reader = gguf_io.open_gguf(path)
    gguf_io.check_tensor_types(reader)
    config = ModelConfig.from_gguf_metadata(
        gguf_io.gguf_metadata(reader), (t.name for t in reader.tensors)
    )
    model = LlamaForCausalLM(config, dtype, "meta")
    packable = gguf_io.packed_sizes(reader)
    keep, _fallback = gpu_plan(model, packable)
    return _packed_need(model, keep, packable)


@functools.lru_cache(maxsize=256)
def _gguf_estimate(path: str, _mtime_ns: int) -> int:
    return gguf_gpu_bytes(Path(path))


def memory_estimate_bytes(model: AvailableModel) -> int:
    """What placement plans with for a model not loaded yet: a GGUF's packed weights,
    from its header (read once per version of the file), else the files' size."""
    if model.format != "gguf":
        return model.size_bytes
    try:
        return _gguf_estimate(str(model.path), model.path.stat().st_mtime_ns)
    except (ModelLoadError, OSError, ValueError, KeyError):
        return model.size_bytes


def _loaded(
    source: ModelSource,
    config: ModelConfig,
    model: LlamaForCausalLM,
    tokenizer: Tokenizer,
    defaults: dict[str, Any],
    device: torch.device,
    dtype: torch.dtype,
) -> LoadedModel:
    return LoadedModel(
        model_id=source.model_id,
        config=config,
        model=model,
        tokenizer=tokenizer,
        chat_template=tokenizer.chat_template,
        source=source.path,
        format=source.format,
        device=device,
        dtype=dtype,
        nbytes=model.nbytes,
        generation_defaults=defaults,
    )

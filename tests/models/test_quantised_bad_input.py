"""Quantised checkpoints we cannot read are a 400 at load that names the model and the
problem; the neuron (a real daemon) goes on serving the model it has."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import gguf
import pytest
from safetensors.torch import load_file, save_file

from tests.models.quant_gguf import write_quant_gguf
from tests.models.quant_hf import quantised_folders
from tests.support.daemons import Neuron, start_neuron
from tests.support.tiny_models import make_tiny_model

Q = gguf.GGMLQuantizationType


def _truncated(models: Path) -> None:
    whole = write_quant_gguf(models / "whole.gguf").read_bytes()
    (models / "truncated.gguf").write_bytes(whole[: len(whole) // 2])
    (models / "whole.gguf").unlink()


def _unread_type(models: Path) -> None:
    write_quant_gguf(models / "q2k.gguf", types={"ffn_up": Q.Q2_K, "ffn_gate": Q.Q4_0})


def _awq_without_qzeros(models: Path) -> None:
    quant, reference = quantised_folders(models / "tiny-llama", models, "awq")
    tensors = load_file(str(quant / "model.safetensors"))
    kept = {n: t for n, t in tensors.items() if n != "model.layers.1.mlp.up_proj.qzeros"}
    save_file(kept, str(quant / "model.safetensors"))
    quant.rename(models / "awq-no-qzeros")
    shutil.rmtree(reference)


def _other_method(models: Path) -> None:
    shutil.copytree(models / "tiny-llama", models / "bnb")
    config = json.loads((models / "bnb" / "config.json").read_text())
    config["quantization_config"] = {"quant_method": "bitsandbytes", "load_in_4bit": True}
    (models / "bnb" / "config.json").write_text(json.dumps(config))


# model id: (how it is made, what the error must say)
CASES = {
    "truncated.gguf": (_truncated, "not a readable GGUF"),
    "q2k.gguf": (_unread_type, "Q2_K"),
    "awq-no-qzeros": (_awq_without_qzeros, "model.layers.1.mlp.up_proj has no qzeros"),
    "bnb": (_other_method, "'bitsandbytes'"),
}


@pytest.fixture(scope="module")
def neuron(tmp_path_factory) -> Iterator[Neuron]:
    models = tmp_path_factory.mktemp("quantised-models")
    make_tiny_model(models, "llama")
    for make, _ in CASES.values():
        make(models)
    proc = start_neuron(models / "work", models, ["tiny-llama"])
    yield proc
    assert proc.stop() == 0, proc.tail()


@pytest.mark.parametrize("model_id", list(CASES))
def test_bad_quantised_model_is_a_400_and_the_neuron_serves_on(neuron, model_id) -> None:
    status, body, _ = neuron.post("/models/load", {"model_id": model_id})
    assert status == 400, body
    message = body["error"]["message"]
    assert model_id in message and CASES[model_id][1] in message, message
    status, body, _ = neuron.post(
        "/v1/chat/completions",
        {"model": "tiny-llama", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2},
    )
    assert status == 200 and body["choices"][0]["message"]["content"] is not None
    assert neuron.model("tiny-llama")["status"] == "ready"


def test_gpu_quantization_must_be_auto_or_none(neuron) -> None:
    status, body, _ = neuron.post(
        "/models/load", {"model_id": "tiny-llama", "gpu_quantization": "int3"}
    )
    assert status == 400 and "gpu_quantization" in body["error"]["message"]

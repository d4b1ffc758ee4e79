"""Tiny model folders for embeddings, reranking and fill-in-the-middle, made by the tests.

- an embedding model: a tiny Qwen3 with a sentence-transformers pooling config;
- a reranker: a tiny Qwen3 whose "yes" row of the LM head is set, from transformers'
  own hidden states, so that "yes" beats "no" for one document of a fixed set only;
- a code model: SmolLM2's tokenizer plus Qwen2.5-Coder's three FIM tokens.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch

from tests.support.tiny_models import make_tiny_model, smollm2_tokenizer_dir

QWEN_FIM = ("<|fim_prefix|>", "<|fim_suffix|>", "<|fim_middle|>")

# Qwen3-Reranker's judge prompt, as its model card writes it.
JUDGE_PREFIX = (
    "<|im_start|>system\nJudge whether the Document meets the requirements based on the "
    'Query and the Instruct provided. Note that the answer can only be "yes" or "no".'
    "<|im_end|>\n<|im_start|>user\n"
)
JUDGE_SUFFIX = "<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n"
JUDGE_INSTRUCTION = "Given a web search query, retrieve relevant passages that answer the query"
# What the tiny reranker is built on: documents[BEST] is the one it says "yes" to.
QUERY = "what do pandas eat"
DOCUMENTS = (
    "Trains run on rails between cities.",
    "Giant pandas eat bamboo almost exclusively.",
    "The stock market closed higher today.",
    "Rain is expected over the weekend.",
)
BEST = 1


def make_embedding_model(root: Path, name: str, mode: str, normalize: bool = True) -> Path:
    """A tiny Qwen3 folder whose modules.json pools by `mode` (lasttoken, mean_tokens)."""
    folder = make_tiny_model(root, "qwen3", seed=3, name=name)
    kinds = ["Transformer", "Pooling"] + (["Normalize"] if normalize else [])
    paths = ["", "1_Pooling", "2_Normalize"]
    modules = [
        {"idx": i, "name": str(i), "path": paths[i], "type": f"sentence_transformers.models.{k}"}
        for i, k in enumerate(kinds)
    ]
    (folder / "modules.json").write_text(json.dumps(modules))
    pooling = {f"pooling_mode_{m}": m == mode for m in ("cls_token", "mean_tokens", "lasttoken")}
    (folder / "1_Pooling").mkdir(exist_ok=True)
    (folder / "1_Pooling" / "config.json").write_text(
        json.dumps({"word_embedding_dimension": 64, **pooling})
    )
    return folder


def judge_ids(tokenizer, query: str, document: str) -> list[int]:
    """The card's prompt, tokenized the card's way (each part on its own)."""
    body = f"<Instruct>: {JUDGE_INSTRUCTION}\n<Query>: {query}\n<Document>: {document}"
    return [
        i
        for part in (JUDGE_PREFIX, body, JUDGE_SUFFIX)
        for i in tokenizer(part, add_special_tokens=False)["input_ids"]
    ]


def make_reranker(root: Path) -> Path:
    """A tiny Qwen3 "reranker" for which logit(yes) - logit(no) is +6 on DOCUMENTS[BEST]
    and -6 on every other document for QUERY (solved from transformers' last hidden
    states)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = root / "tiny-qwen3-reranker"
    if (folder / "config.json").exists():
        return folder
    base = make_tiny_model(root, "qwen3", seed=5, name="tiny-qwen3-judge-base")
    tokenizer = AutoTokenizer.from_pretrained(str(base))
    model = AutoModelForCausalLM.from_pretrained(str(base), dtype=torch.float32)
    with torch.no_grad():
        states = torch.stack(
            [
                model.model(torch.tensor([judge_ids(tokenizer, QUERY, d)])).last_hidden_state[0, -1]
                for d in DOCUMENTS
            ]
        )
        target = torch.full((len(DOCUMENTS), 1), -6.0)
        target[BEST] = 6.0
        w = torch.linalg.lstsq(states, target).solution[:, 0]
        yes, no = tokenizer.convert_tokens_to_ids("yes"), tokenizer.convert_tokens_to_ids("no")
        head = model.lm_head.weight
        head[yes] = head[no] + w
    model.save_pretrained(str(folder), safe_serialization=True)
    for file in base.iterdir():
        if file.name.startswith("tokenizer") or file.name.endswith(".jinja"):
            shutil.copy(file, folder / file.name)
    return folder


def make_fim_model(root: Path) -> Path:
    """A tiny Qwen3 whose tokenizer is SmolLM2's plus Qwen2.5-Coder's FIM tokens."""
    from tokenizers import AddedToken, Tokenizer

    tok_dir = root / "fim-tokenizer"
    if not (tok_dir / "tokenizer.json").exists():
        shutil.copytree(smollm2_tokenizer_dir(root), tok_dir, dirs_exist_ok=True)
        tokenizer = Tokenizer.from_file(str(tok_dir / "tokenizer.json"))
        tokenizer.add_special_tokens([AddedToken(t, special=True) for t in QWEN_FIM])
        tokenizer.save(str(tok_dir / "tokenizer.json"))
    return make_tiny_model(root, "qwen3", seed=7, name="tiny-qwen3-coder", tokenizer_dir=tok_dir)


def make_cross_encoder(root: Path) -> Path:
    """A tiny Qwen3ForSequenceClassification folder (one label): what a sentence-transformers
    CrossEncoder of a decoder saves."""
    from transformers import AutoModelForSequenceClassification

    folder = root / "tiny-qwen3-cross-encoder"
    if (folder / "config.json").exists():
        return folder
    base = make_tiny_model(root, "qwen3", seed=9, name="tiny-qwen3-classifier-base")
    torch.manual_seed(9)
    model = AutoModelForSequenceClassification.from_pretrained(
        str(base), num_labels=1, pad_token_id=2, dtype=torch.float32
    )
    with torch.no_grad():
        model.score.weight.normal_(0.0, 0.5)
    model.save_pretrained(str(folder), safe_serialization=True)
    for file in base.iterdir():
        if file.name.startswith("tokenizer") or file.name.endswith(".jinja"):
            shutil.copy(file, folder / file.name)
    return folder

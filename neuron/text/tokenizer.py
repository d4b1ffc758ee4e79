"""The model's tokenizer: `tokenizers.Tokenizer` plus the facts a server needs around it.

Those facts (BOS policy, every id that ends a turn, the chat template) are scattered over
tokenizer_config.json, generation_config.json, config.json and chat_template.jinja in a
Hugging Face folder, or stored as `tokenizer.*` metadata in a GGUF; both end up here.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import gguf
from tokenizers import Tokenizer as HFTokenizer

from neuron.text.chat_template import ChatTemplate, ChatTemplateError
from neuron.text.gguf_tokenizer import gguf_value, tokenizer_from_gguf


def _read_json(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def _token_text(value: Any) -> str | None:
    """tokenizer_config stores special tokens as strings or as AddedToken dicts."""
    if isinstance(value, dict):
        return value.get("content")
    return value if isinstance(value, str) else None


def _ids(value: Any) -> list[int]:
    if isinstance(value, int):
        return [value]
    if isinstance(value, list):
        return [v for v in value if isinstance(v, int)]
    return []


def _pick_template(value: Any) -> str | None:
    """`chat_template` may be a list of named templates; the server uses "default"."""
    if isinstance(value, list):
        named = {t.get("name"): t.get("template") for t in value if isinstance(t, dict)}
        return named.get("default") or next(iter(named.values()), None)
    return value if isinstance(value, str) else None


class UntokenizableText(ValueError):
    """Input text no tokenizer can take (the client's fault: a 400, never a 500)."""


class Tokenizer:
    """Encode/decode with the model's own BOS policy and end-of-generation ids."""

    def __init__(
        self,
        backend: HFTokenizer,
        *,
        bos_token: str | None,
        eos_token: str | None,
        add_bos: bool,
        eos_token_ids: Iterable[int] = (),
        chat_template: str | None = None,
    ) -> None:
        self.backend = backend
        self.bos_token = bos_token
        self.eos_token = eos_token
        self.bos_token_id = backend.token_to_id(bos_token) if bos_token else None
        self.add_bos = add_bos and self.bos_token_id is not None
        self.chat_template = chat_template
        ids = set(eos_token_ids)
        if eos_token and backend.token_to_id(eos_token) is not None:
            ids.add(backend.token_to_id(eos_token))
        turn_end = self._turn_terminator()
        if turn_end is not None:
            ids.add(turn_end)
        self.eos_token_ids: frozenset[int] = frozenset(ids)

    @property
    def vocab_size(self) -> int:
        return self.backend.get_vocab_size(with_added_tokens=True)

    def token_to_id(self, token: str) -> int | None:
        return self.backend.token_to_id(token)

    def encode(
        self,
        text: str,
        add_bos: bool | None = None,
        post_process: bool = False,
        pair: str | None = None,
    ) -> list[int]:
        """Token ids of `text`. Special tokens written in the text are recognised; the only
        token ever added is BOS (per the model's config, or `add_bos`), and never twice —
        a rendered chat prompt that already starts with it keeps a single one.
        `post_process` also applies the tokenizer's own template, as sentence-transformers
        does for an embedding's input (Qwen3-Embedding's appends <|endoftext|>); `pair`
        is the second text of a pair (a cross-encoder's document), under that template."""
        for part in (text, pair or ""):
            try:
                part.encode("utf-8")
            except UnicodeEncodeError as exc:  # lone surrogates: no bytes, so no tokens
                raise UntokenizableText(
                    f"the text has a lone surrogate (U+{ord(part[exc.start]):04X}) at "
                    f"character {exc.start}, which is not valid Unicode"
                ) from None
        ids = self.backend.encode(text, pair, add_special_tokens=post_process).ids
        want_bos = self.add_bos if add_bos is None else add_bos
        if want_bos and self.bos_token_id is not None and ids[:1] != [self.bos_token_id]:
            ids.insert(0, self.bos_token_id)
        return ids

    def decode(self, ids: Sequence[int], skip_special_tokens: bool = True) -> str:
        return self.backend.decode(list(ids), skip_special_tokens=skip_special_tokens)

    def _turn_terminator(self) -> int | None:
        """The special token the chat template writes right after an assistant message
        (<|im_end|>, <|eot_id|>, <end_of_turn>...): models emit it to end a reply, so it
        stops generation even where the configs name only the document EOS."""
        if not self.chat_template:
            return None
        marker = "\x00reply\x00"
        messages = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": marker}]
        try:
            text = ChatTemplate(self.chat_template, self.bos_token, self.eos_token).render(
                messages, add_generation_prompt=False
            )
        except ChatTemplateError:
            return None
        _, found, after = text.partition(marker)
        after = after.lstrip()
        if not found or not after:
            return None
        specials = self.backend.get_added_tokens_decoder().values()
        for added in sorted(specials, key=lambda a: -len(a.content)):
            if added.special and after.startswith(added.content):
                return self.backend.token_to_id(added.content)
        return None

    @classmethod
    def from_hf_folder(cls, path: str | Path) -> Tokenizer:
        """Load tokenizer.json and the configs that say how it is used."""
        folder = Path(path)
        if not (folder / "tokenizer.json").is_file():
            raise FileNotFoundError(f"{folder} has no tokenizer.json")
        backend = HFTokenizer.from_file(str(folder / "tokenizer.json"))
        tok_config = _read_json(folder / "tokenizer_config.json")
        gen_config = _read_json(folder / "generation_config.json")
        model_config = _read_json(folder / "config.json")
        bos = _token_text(tok_config.get("bos_token"))
        eos = _token_text(tok_config.get("eos_token"))
        if bos is None and isinstance(model_config.get("bos_token_id"), int):
            bos = backend.id_to_token(model_config["bos_token_id"])
        template_file = folder / "chat_template.jinja"
        if template_file.is_file():
            template = template_file.read_text(encoding="utf-8")
        else:
            template = _pick_template(tok_config.get("chat_template"))
        add_bos = tok_config.get("add_bos_token")
        if add_bos is None:  # no flag: the post-processor (e.g. Llama 3's) decides
            bos_id = backend.token_to_id(bos) if bos else None
            add_bos = bos_id is not None and backend.encode("a").ids[:1] == [bos_id]
        eos_ids = _ids(gen_config.get("eos_token_id")) + _ids(model_config.get("eos_token_id"))
        return cls(
            backend,
            bos_token=bos,
            eos_token=eos,
            add_bos=bool(add_bos),
            eos_token_ids=eos_ids,
            chat_template=template,
        )

    @classmethod
    def from_gguf(cls, reader: gguf.GGUFReader) -> Tokenizer:
        """Build everything from `tokenizer.*` metadata (no side files)."""
        backend = tokenizer_from_gguf(reader)
        tokens: list[str] = gguf_value(reader, "tokenizer.ggml.tokens")
        bos_id = gguf_value(reader, "tokenizer.ggml.bos_token_id")
        eos_id = gguf_value(reader, "tokenizer.ggml.eos_token_id")
        eot_id = gguf_value(reader, "tokenizer.ggml.eot_token_id")
        # llama.cpp adds BOS to SentencePiece vocabularies that do not say otherwise.
        default_bos = gguf_value(reader, "tokenizer.ggml.model") == "llama"
        return cls(
            backend,
            bos_token=tokens[bos_id] if bos_id is not None else None,
            eos_token=tokens[eos_id] if eos_id is not None else None,
            add_bos=bool(gguf_value(reader, "tokenizer.ggml.add_bos_token", default_bos)),
            eos_token_ids=[i for i in (eos_id, eot_id) if i is not None],
            chat_template=gguf_value(reader, "tokenizer.chat_template"),
        )

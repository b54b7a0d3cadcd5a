"""A vocab-only GGUF (no tensors) from Hugging Face tokenizer files, written with gguf's GGUFWriter.

The metadata follows what llama.cpp's converter writes for Qwen (convert_hf_to_gguf.py, get_vocab_base and
_set_vocab_gpt2): token texts by id, padded to the model's vocab size with ``[PAD{id}]`` UNUSED entries;
token types NORMAL, CONTROL for added tokens marked special or looking like ``<|...|>``, USER_DEFINED for
the other added tokens; the merges as "left right" strings; bos/eos/pad ids; the chat template.
llama.cpp reads no hyperparameters of a vocab_only load (llama_model_base::load_hparams returns before
them), so the architecture name is the only model metadata written.
"""

from __future__ import annotations

import json
from collections.abc import Collection
from pathlib import Path
from typing import Any

import gguf


def _looks_special(text: str) -> bool:
    return text.startswith("<|") and text.endswith("|>")


def _token_table(
    data: dict[str, Any], vocab_size: int | None, user_defined: Collection[str]
) -> tuple[list[str], list[gguf.TokenType]]:
    by_id: dict[int, tuple[str, gguf.TokenType]] = {
        i: (text, gguf.TokenType.NORMAL) for text, i in data["model"]["vocab"].items()
    }
    for added in data["added_tokens"]:
        special = added["special"] or _looks_special(added["content"])
        kind = gguf.TokenType.CONTROL if special else gguf.TokenType.USER_DEFINED
        by_id[added["id"]] = (added["content"], kind)
    for i, (text, _) in list(by_id.items()):
        if text in user_defined:
            by_id[i] = (text, gguf.TokenType.USER_DEFINED)
    size = max(vocab_size or 0, max(by_id) + 1)
    table = [by_id.get(i, (f"[PAD{i}]", gguf.TokenType.UNUSED)) for i in range(size)]
    return [t for t, _ in table], [k for _, k in table]


def write_vocab_gguf(
    tokenizer_dir: Path,
    out: Path,
    *,
    arch: str = "qwen3",
    pre: str = "qwen2",
    vocab_size: int | None = None,
    bos_token: str = "<|endoftext|>",
    user_defined: Collection[str] = (),
) -> Path:
    """``tokenizer_dir``'s tokenizer.json + tokenizer_config.json as a GGUF llama.cpp loads with vocab_only.

    ``bos_token``: Qwen's tokenizer_config has none; config.json's bos_token_id is ``<|endoftext|>``.
    ``user_defined``: texts of ordinary tokens to mark USER_DEFINED as well (to test odd vocabularies).
    """
    data = json.loads((tokenizer_dir / "tokenizer.json").read_text(encoding="utf-8"))
    config = json.loads((tokenizer_dir / "tokenizer_config.json").read_text(encoding="utf-8"))
    tokens, types = _token_table(data, vocab_size, user_defined)
    ids = {text: i for i, text in enumerate(tokens)}
    merges = [m if isinstance(m, str) else " ".join(m) for m in data["model"]["merges"]]

    writer = gguf.GGUFWriter(out, arch)
    writer.add_name(f"{arch} vocabulary")
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre(pre)
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    writer.add_token_merges(merges)
    writer.add_bos_token_id(ids[bos_token])
    writer.add_eos_token_id(ids[config["eos_token"]])
    writer.add_pad_token_id(ids[config["pad_token"]])
    writer.add_add_bos_token(bool(config.get("add_bos_token", False)))
    writer.add_chat_template(config["chat_template"])
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return out

"""Acceptance: `qwenkit info` on the real Qwen2.5-Coder-0.5B-Instruct Q4_K_M GGUF, and truncated copies."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from qwenkit.cli import main
from qwenkit.errors import ModelFormatError
from qwenkit.models import read_gguf_metadata

pytestmark = pytest.mark.realmodel


def test_info_reports_the_real_architecture(
    real_model_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["info", str(real_model_path), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["architecture"] == "qwen2"
    assert (info["layers"], info["hidden_size"]) == (24, 896)
    assert (info["attention_heads"], info["kv_heads"]) == (14, 2)
    assert info["quantization"] == "Q4_K_M"
    assert info["context_length"] == 32768
    assert (info["has_chat_template"], info["template_family"]) == (True, "qwen2.5")
    assert info["vocab_size"] == 151936
    assert info["parameter_count"] == 630_167_424  # token_embd and output stored separately in this GGUF
    embedding = 151936 * 896  # the tied matrix: token_embd (Q5_0) and output (Q8_0) in this file
    assert info["embedding_parameters"] == info["output_head_parameters"] == embedding
    assert info["non_embedding_parameters"] == 630_167_424 - 2 * embedding == 357_898_112
    assert info["model_parameters"] == 630_167_424 - embedding == 494_032_768  # Qwen's 0.49B
    assert (info["model"], info["name"]) == ("qwen2.5-coder-0.5b-instruct", "Qwen2.5-Coder-0.5B-Instruct")
    assert info["file_label"] == "Qwen2.5 Coder 0.5B Instruct AWQ"  # the packager's general.name
    assert sum(info["tensor_types"].values()) == 291 and {"Q4_K", "Q6_K", "F32"} <= set(info["tensor_types"])
    specials = {t["role"]: (t["id"], t["text"]) for t in info["special_tokens"]}
    assert specials["eos"] == (151645, "<|im_end|>")
    assert specials["bos"] == specials["pad"] == (151643, "<|endoftext|>")


def test_info_table_says_which_count_is_which(
    real_model_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    assert main(["info", str(real_model_path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    rows = dict(re.split(r"\s{2,}", line.strip(), maxsplit=1) for line in lines if line.strip())
    assert rows["name"] == "Qwen2.5-Coder-0.5B-Instruct (catalog: qwen2.5-coder-0.5b-instruct)"
    assert rows["file label"] == "Qwen2.5 Coder 0.5B Instruct AWQ (general.name, the packager's)"
    assert rows["parameters"] == "0.49 B (494,032,768) with embeddings, 0.36 B (357,898,112) without"
    assert rows["in this file"].startswith("0.63 B (630,167,424): the tied embedding matrix is stored twice")


def test_chat_template_is_available_to_the_chat_layer(real_model_path: Path) -> None:
    meta = read_gguf_metadata(real_model_path)
    assert meta.chat_template is not None
    assert "<|im_start|>" in meta.chat_template and "<tool_call>" in meta.chat_template
    assert meta.token_count == 151936 and meta.file_type_name == "Q4_K_M"


@pytest.mark.parametrize(
    "keep", [3_000_000, 200_000_000], ids=["cut in the vocabulary", "cut in the weights"]
)
def test_truncated_copies_fail_clearly(real_model_path: Path, tmp_path: Path, keep: int,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    cut = tmp_path / "cut.gguf"
    with real_model_path.open("rb") as source, cut.open("wb") as target:
        target.write(source.read(keep))
    with pytest.raises(ModelFormatError, match="truncated or corrupt"):
        read_gguf_metadata(cut)
    assert main(["info", str(cut)]) == 1
    err = capsys.readouterr().err
    assert "truncated or corrupt" in err and "Traceback" not in err

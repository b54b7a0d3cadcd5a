"""The unpacked-GGUF cache: a GGUF read through transformers once, then from a float32 checkpoint.

On the tiny Qwen2 converted to an f32 GGUF (transformers' GGUF reader does not carry Qwen3's head size):
a load through the cache gives exactly the tensors and tokenizer of a load from the GGUF itself, and
later loads never read the GGUF. The cache's own rules (a GGUF replaced in place is unpacked afresh; the
cap evicts the entry used longest ago; with no room the GGUF is read directly) are checked with a
writer that fakes the checkpoint, as transformers reads even a tiny GGUF slowly (its 151,936 tokens).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pytest
import torch
import transformers

from qwenkit.engine import gguf_unpack
from qwenkit.engine.gguf_unpack import BYTES_PER_PARAMETER, CAP_ENV, UnpackCache, cached, unpacked
from qwenkit.engine.transformers_loading import ModelSource, load_model, load_tokenizer, tokenizer_of
from qwenkit.errors import UsageError
from qwenkit.models.gguf_reader import read_gguf_metadata

pytestmark = pytest.mark.slow


@pytest.fixture()
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("QWENKIT_HOME", str(tmp_path / "home"))
    monkeypatch.delenv(CAP_ENV, raising=False)
    return tmp_path / "home"


@pytest.fixture(scope="module")
def tiny_qwen2_gguf(tmp_path_factory: pytest.TempPathFactory, tiny_qwen2_dir: Path) -> Path:
    from qwenkit.convert import convert

    return convert(tiny_qwen2_dir, tmp_path_factory.mktemp("unpack") / "tiny-qwen2-F32.gguf", "f32").path


@pytest.fixture()
def gguf(tmp_path: Path, tiny_qwen2_gguf: Path) -> Path:
    """A private copy: tests change its modification time."""
    copy = tmp_path / "models" / tiny_qwen2_gguf.name
    copy.parent.mkdir()
    shutil.copy(tiny_qwen2_gguf, copy)
    return copy


@pytest.fixture()
def fake_writer(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """Unpacking writes a 1 MB stand-in; the list records which GGUFs were read."""
    read: list[Path] = []

    def write(gguf: Path, out: Path) -> None:
        read.append(gguf)
        (out / "model.safetensors").write_bytes(bytes(1_000_000))

    monkeypatch.setattr(gguf_unpack, "_write_checkpoint", write)
    return read


def _never_read(gguf: Path, out: Path) -> None:
    raise AssertionError(f"{gguf} was read again")


def _record_gguf_reads(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """What transformers itself returns when it reads a GGUF (the unpacking's own reads, recorded so
    that the test does not pay for a second read)."""
    read: dict[str, Any] = {}
    for key, auto in (
        ("model", transformers.AutoModelForCausalLM),
        ("tokenizer", transformers.AutoTokenizer),
    ):

        def load(*args: Any, _key: str = key, _original: Any = auto.from_pretrained, **kwargs: Any) -> Any:
            loaded = _original(*args, **kwargs)
            if "gguf_file" in kwargs:
                read[_key] = loaded
            return loaded

        monkeypatch.setattr(auto, "from_pretrained", load)
    return read


def test_a_load_through_the_cache_equals_a_load_from_the_gguf(
    home: Path, gguf: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    direct = _record_gguf_reads(monkeypatch)
    source = ModelSource.locate(gguf)
    first = load_model(source, "cpu", torch.float32, None)
    folder = cached(gguf)
    assert folder is not None and folder.parent == home / "unpacked"
    assert (folder / "config.json").is_file() and list(folder.glob("*.safetensors"))
    assert direct.keys() == {"model", "tokenizer"}

    monkeypatch.setattr(gguf_unpack, "_write_checkpoint", _never_read)
    again = load_model(source, "cpu", torch.float32, None)
    tokenizer = load_tokenizer(source)
    expected = direct["model"].state_dict()
    for model in (first, again):
        got = model.state_dict()
        assert got.keys() == expected.keys()
        for name, tensor in expected.items():
            assert torch.equal(got[name], tensor), name
    reference = tokenizer_of(direct["tokenizer"])
    text = "def fib(n):\n    return n if n < 2 else fib(n - 1) + fib(n - 2)  # <|im_end|> 你好"
    assert tokenizer.encode_text(text) == reference.encode_text(text)
    assert tokenizer.chat_template == reference.chat_template and tokenizer.chat_template
    assert tokenizer.eos_token_ids == reference.eos_token_ids
    assert tokenizer.special_tokens == reference.special_tokens
    assert tokenizer.vocab_size == reference.vocab_size


def test_a_gguf_replaced_in_place_is_unpacked_afresh(home: Path, gguf: Path, fake_writer: list[Path]) -> None:
    first = unpacked(gguf)
    assert unpacked(gguf) == first and fake_writer == [gguf]
    stat = gguf.stat()
    os.utime(gguf, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    assert cached(gguf) is None
    second = unpacked(gguf)
    assert first is not None and second is not None and first != second and fake_writer == [gguf, gguf]


def test_the_cap_evicts_the_entry_used_longest_ago(
    home: Path, gguf: Path, fake_writer: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    names = ["a.gguf", "b.gguf", "c.gguf"]
    for name in names:
        shutil.copy(gguf, gguf.with_name(name))
    needed = read_gguf_metadata(gguf).parameter_count * BYTES_PER_PARAMETER
    monkeypatch.setenv(CAP_ENV, str((needed + 1_500_000) / 1e9))  # room for two 1 MB entries beside it
    a, b, c = (gguf.with_name(n) for n in names)
    assert unpacked(a) is not None and unpacked(b) is not None
    assert (cached(a) / ".complete").read_text() == "1000000"  # type: ignore[operator]  # its size, kept
    (cached(b) / ".complete").write_text("")  # type: ignore[operator]  # as older marks are: measured
    os.utime(cached(a) / ".complete", (1, 1))  # type: ignore[operator]  # a: used longest ago
    assert unpacked(c) is not None
    assert cached(a) is None and cached(b) is not None and cached(c) is not None


def test_with_no_room_the_gguf_is_read_directly(
    home: Path, gguf: Path, fake_writer: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(CAP_ENV, "0")
    source = ModelSource.locate(gguf)
    assert source.readable() == source
    assert fake_writer == [] and not (home / "unpacked").exists()


@pytest.mark.parametrize("value", ["lots", "-1", "nan", "inf"])
def test_a_bad_cap_is_a_clear_error(home: Path, monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv(CAP_ENV, value)
    with pytest.raises(UsageError, match=CAP_ENV):
        UnpackCache.from_env()

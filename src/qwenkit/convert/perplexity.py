"""Perplexity as llama.cpp's ``llama-perplexity`` computes it, and KL divergence against a base.

The text is tokenized once (a BOS only where the model asks for one: none for Qwen) and cut into
consecutive chunks of exactly ``context`` tokens (the remainder is dropped; llama.cpp also needs at
least two chunks' worth of text). Each chunk is evaluated from an empty cache with logits for every
position, and only its second half is scored: positions context/2 ... context-2 each predict the
next token, so every scored token has at least context/2 tokens before it. Perplexity is
exp(mean NLL) over all scored tokens; its uncertainty, as llama.cpp prints it, is
ppl * sqrt((mean(NLL^2) - mean(NLL)^2) / (count - 1)).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import psutil

from qwenkit.convert.kl import DEFAULT_TOP_K, BaseLogprobs, KLSummary, kl_estimate, score_rows, text_sha256
from qwenkit.convert.llama_eval import ChunkEvaluator
from qwenkit.errors import UsageError

DEFAULT_CONTEXT = 512
DECODE_STEPS = 64


@dataclass(frozen=True)
class PerplexityResult:
    model: str
    context: int
    chunks: int
    tokens: int  # tokens scored
    ppl: float
    ppl_err: float
    chunk_ppl: tuple[float, ...]  # running estimate after each chunk, as llama-perplexity prints it
    seconds: float
    eval_tokens_per_s: float  # prompt-processing rate over the chunks
    rss_bytes: int  # this process's resident memory once the model is loaded and evaluated
    decode_tokens_per_s: float | None = None
    kl: KLSummary | None = None


def read_text(path: str | Path) -> str:
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"{path} is not a file", param="text")
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise UsageError(f"{path} is not UTF-8 text", param="text") from None


def _check_chunk_length(context: int) -> None:
    if context < 16 or context % 2:
        raise UsageError(f"--context must be an even number of at least 16 tokens (got {context})")


def check_context(context: int, text: str) -> None:
    """Before llama.cpp sizes a context from it: an even chunk length that the text can fill twice
    (every token holds at least one byte, so a text of fewer bytes cannot, whatever the tokenizer)."""
    _check_chunk_length(context)
    size = len(text.encode("utf-8"))
    if size < 2 * context:
        raise UsageError(
            f"the text has {size} bytes; perplexity at --context {context} needs at least "
            f"{2 * context} tokens",
            param="text",
        )


def plan_chunks(n_tokens: int, context: int, chunks: int | None) -> int:
    """How many chunks llama-perplexity would score: whole chunks only, at most ``chunks``."""
    _check_chunk_length(context)
    if n_tokens < 2 * context:
        raise UsageError(
            f"the text has {n_tokens} tokens; perplexity at --context {context} needs at least {2 * context}",
            param="text",
        )
    available = n_tokens // context
    if chunks is not None and chunks < 1:
        raise UsageError(f"--chunks must be at least 1 (got {chunks})")
    return available if chunks is None else min(chunks, available)


class _Totals:
    """Running sums of the scored positions, and the pieces the KL base needs."""

    def __init__(self) -> None:
        self.nll: list[np.ndarray] = []
        self.ids: list[np.ndarray] = []
        self.logprobs: list[np.ndarray] = []
        self.targets: list[np.ndarray] = []
        self.at_base: list[np.ndarray] = []
        self.running: list[float] = []

    def add(
        self,
        targets: np.ndarray,
        nll: np.ndarray,
        ids: np.ndarray,
        logprobs: np.ndarray,
        at_base: np.ndarray | None,
    ) -> None:
        self.nll.append(nll)
        self.ids.append(ids)
        self.logprobs.append(logprobs)
        self.targets.append(targets)
        if at_base is not None:
            self.at_base.append(at_base)
        self.running.append(float(np.exp(np.concatenate(self.nll).mean())))

    def all_nll(self) -> np.ndarray:
        return np.concatenate(self.nll)


def _uncertainty(nll: np.ndarray) -> tuple[float, float]:
    mean, mean_sq = float(nll.mean()), float((nll * nll).mean())
    ppl = float(np.exp(mean))
    var = mean_sq - mean * mean
    return ppl, (ppl * float(np.sqrt(var / (len(nll) - 1))) if var > 0 and len(nll) > 1 else 0.0)


def perplexity(
    model: str | Path,
    text: str,
    *,
    context: int = DEFAULT_CONTEXT,
    chunks: int | None = None,
    base: BaseLogprobs | None = None,
    top_k: int = DEFAULT_TOP_K,
    decode_steps: int = 0,
    threads: int | None = None,
    progress: Callable[[int, int, float], None] | None = None,
) -> tuple[PerplexityResult, BaseLogprobs]:
    """Score ``model`` on ``text``; also returns its own top-k, to serve as a KL base for others."""
    check_context(context, text)
    with ChunkEvaluator(model, context, threads) as ev:
        tokens = ev.tokenize(text)
        n_chunks = plan_chunks(len(tokens), context, chunks)
        first = context // 2
        spans = [(c * context, c * context + first + 1, (c + 1) * context) for c in range(n_chunks)]
        all_targets = np.concatenate([tokens[t0:end] for _, t0, end in spans])
        if base is not None:
            base.check_matches(all_targets, context)
        totals = _Totals()
        scored = 0
        began = time.perf_counter()
        for c, (start, t0, end) in enumerate(spans):
            chunk = tokens[start:end].copy()
            if ev.adds_bos:
                chunk[0] = ev.bos  # llama-perplexity puts the BOS in place of each chunk's first token
            targets = tokens[t0:end]
            base_ids = None if base is None else base.top_ids[scored : scored + len(targets)]
            rows = score_rows(ev.logits(chunk)[first : context - 1], targets, top_k, base_ids)
            totals.add(targets, rows.nll, rows.top_ids, rows.top_logprobs, rows.model_logprobs_at_base)
            scored += len(targets)
            if progress is not None:
                progress(c + 1, n_chunks, totals.running[-1])
        seconds = time.perf_counter() - began
        rss = int(psutil.Process(os.getpid()).memory_info().rss)
        decode = ev.decode_speed(tokens, decode_steps) if decode_steps else None
    nll = totals.all_nll()
    targets = np.concatenate(totals.targets)
    own = BaseLogprobs(
        np.concatenate(totals.ids),
        np.concatenate(totals.logprobs),
        targets,
        nll,
        {
            "model": str(model),
            "context": context,
            "chunks": n_chunks,
            "text_sha256": text_sha256(text),
            "top_k": top_k,
        },
    )
    kl = None
    if base is not None:
        kl = KLSummary.of(
            kl_estimate(base.top_logprobs, np.concatenate(totals.at_base)),
            own.top_ids[:, 0] == base.top_ids[:, 0],
            base.nll,
            nll,
        )
    ppl, err = _uncertainty(nll)
    result = PerplexityResult(
        model=str(model),
        context=context,
        chunks=n_chunks,
        tokens=len(nll),
        ppl=ppl,
        ppl_err=err,
        chunk_ppl=tuple(totals.running),
        seconds=seconds,
        eval_tokens_per_s=n_chunks * context / seconds,
        rss_bytes=rss,
        decode_tokens_per_s=decode,
        kl=kl,
    )
    return result, own

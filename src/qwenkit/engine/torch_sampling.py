"""Token sampling in torch: a chain of logits processors, then a sampler (the mlx-lm shape).

Processors rewrite one sequence's logits (a 1-D tensor over the vocabulary) given what it has seen:
the penalties. Log-probabilities are reported from the processed logits, so they describe what the
model scored after penalties. The sampler then applies temperature, top-k, top-p and min-p (in that
order, as Hugging Face and vLLM do) and draws with the sequence's own ``torch.Generator``: the same
seed and parameters give the same tokens regardless of what else is running.

Penalty semantics: ``repetition_penalty`` is Hugging Face's (divide positive / multiply negative
logits of every token in the prompt or the output); ``presence_penalty`` and ``frequency_penalty``
are OpenAI's and count output tokens only (as vLLM does).
"""

from __future__ import annotations

import math
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from qwenkit.engine.types import SamplingParams

if TYPE_CHECKING:
    import torch


class TokenHistory:
    """What one sequence has seen, kept as vocabulary-sized tensors so penalties are vectorised."""

    def __init__(
        self, vocab_size: int, prompt_ids: Sequence[int], device: torch.device | str = "cpu"
    ) -> None:
        import torch

        self.seen = torch.zeros(vocab_size, dtype=torch.bool, device=device)  # prompt + output
        self.counts = torch.zeros(vocab_size, dtype=torch.float32, device=device)  # output only
        ids = [i for i in prompt_ids if 0 <= i < vocab_size]
        if ids:
            self.seen[torch.tensor(ids, dtype=torch.long, device=device)] = True

    def accept(self, token_id: int) -> None:
        """Record an output token (sampled or forced)."""
        if 0 <= token_id < self.counts.shape[0]:
            self.seen[token_id] = True
            self.counts[token_id] += 1.0


LogitsProcessor = Callable[["torch.Tensor", TokenHistory], "torch.Tensor"]
Sampler = Callable[["torch.Tensor"], int]


def repetition_penalty(penalty: float) -> LogitsProcessor:
    """Hugging Face semantics: seen tokens' positive logits are divided, negative multiplied."""

    def process(logits: torch.Tensor, history: TokenHistory) -> torch.Tensor:
        import torch

        penalised = torch.where(logits > 0, logits / penalty, logits * penalty)
        return torch.where(history.seen, penalised, logits)

    return process


def presence_frequency_penalty(presence: float, frequency: float) -> LogitsProcessor:
    """OpenAI semantics over output tokens: minus ``frequency * count + presence * (count > 0)``."""

    def process(logits: torch.Tensor, history: TokenHistory) -> torch.Tensor:
        counts = history.counts.to(logits.dtype)
        return logits - frequency * counts - presence * (counts > 0).to(logits.dtype)

    return process


def logit_bias(bias: Sequence[tuple[int, float]]) -> LogitsProcessor:
    """OpenAI semantics: each listed token's logit gets its bias added before anything else."""
    ids = [tid for tid, _ in bias]
    values = [value for _, value in bias]

    def process(logits: torch.Tensor, history: TokenHistory) -> torch.Tensor:
        import torch

        index = torch.tensor(ids, dtype=torch.long, device=logits.device)
        return logits.index_add(0, index, torch.tensor(values, dtype=logits.dtype, device=logits.device))

    return process


def make_processors(params: SamplingParams) -> list[LogitsProcessor]:
    processors: list[LogitsProcessor] = []
    if params.logit_bias:
        processors.append(logit_bias(params.logit_bias))
    if params.repetition_penalty != 1.0:
        processors.append(repetition_penalty(params.repetition_penalty))
    if params.presence_penalty != 0.0 or params.frequency_penalty != 0.0:
        processors.append(presence_frequency_penalty(params.presence_penalty, params.frequency_penalty))
    return processors


# ----- truncation: candidates are (log-probs, token ids), most likely first ---------------------
# Working on a short sorted candidate list instead of the whole vocabulary (150k entries) keeps a
# sampled token to about a millisecond of work on a CPU.

Candidates = tuple["torch.Tensor", "torch.Tensor"]


def top_k_candidates(logprobs: torch.Tensor, k: int) -> Candidates:
    """The k most likely tokens, renormalised among themselves (as Hugging Face's top-k then top-p)."""
    values, ids = logprobs.topk(min(k, logprobs.shape[-1]))
    return values.log_softmax(-1), ids


def nucleus_candidates(logprobs: torch.Tensor, p: float, first: int = 256) -> Candidates:
    """A sorted superset of the top-p nucleus: grow k until the top k hold at least ``p`` of the mass."""
    k = min(first, logprobs.shape[-1])
    while True:
        values, ids = logprobs.topk(k)
        if k == logprobs.shape[-1] or float(values.exp().sum()) >= p:
            return values, ids
        k = min(k * 4, logprobs.shape[-1])


def min_p_candidates(logprobs: torch.Tensor, min_p: float) -> Candidates:
    """Every token at least ``min_p`` times as likely as the best, sorted."""
    ids = (logprobs >= logprobs.max() + math.log(min_p)).nonzero().flatten()
    values, order = logprobs[ids].sort(descending=True)
    return values, ids[order]


def keep_top_p(candidates: Candidates, p: float) -> Candidates:
    """The smallest prefix whose probability reaches ``p`` (always at least one token)."""
    values, ids = candidates
    if p >= 1.0:
        return candidates
    probs = values.exp()
    keep = int(((probs.cumsum(-1) - probs) < p).sum().clamp(min=1))
    return values[:keep].log_softmax(-1), ids[:keep]


def keep_min_p(candidates: Candidates, min_p: float) -> Candidates:
    """Drop tokens less likely than ``min_p`` times the most likely one."""
    values, ids = candidates
    if min_p <= 0.0:
        return candidates
    keep = int((values >= values[0] + math.log(min_p)).sum())
    return values[:keep].log_softmax(-1), ids[:keep]


def gumbel_noise(size: int, generator: torch.Generator | None, device: torch.device) -> torch.Tensor:
    """-log(E), E ~ Exp(1): argmax(log p + noise) draws from p (cheaper than torch.multinomial)."""
    import torch

    uniform = torch.rand(size, generator=generator, device=device)
    return -(-uniform.log()).log()


def draw(candidates: Candidates, noise: torch.Tensor) -> int:
    """Draw one token. ``noise`` covers the whole vocabulary by token id, so which token a given
    random stream picks does not depend on how near-equal candidates happened to be ordered."""
    values, ids = candidates
    return int(ids[(values + noise[ids]).argmax()].item())


def make_sampler(params: SamplingParams, generator: torch.Generator | None) -> Sampler:
    """Greedy (argmax) at temperature 0; otherwise temperature, top-k, top-p, min-p, then a draw."""
    if params.greedy:
        return lambda logprobs: int(logprobs.argmax().item())

    def sample(logprobs: torch.Tensor) -> int:
        scaled = (logprobs / params.temperature).log_softmax(-1)
        noise = gumbel_noise(scaled.shape[-1], generator, scaled.device)
        if params.top_k > 0:
            candidates = top_k_candidates(scaled, params.top_k)
        elif params.top_p < 1.0:
            candidates = nucleus_candidates(scaled, params.top_p)
        elif params.min_p > 0.0:
            candidates = min_p_candidates(scaled, params.min_p)
        else:
            return int((scaled + noise).argmax().item())
        return draw(keep_min_p(keep_top_p(candidates, params.top_p), params.min_p), noise)

    return sample


@dataclass(frozen=True)
class Sample:
    token_id: int
    logprob: float | None
    top_logprobs: tuple[tuple[int, float], ...]


class SequenceSampler:
    """Everything one sequence needs to pick its next token: params, history, processors, RNG."""

    def __init__(
        self,
        params: SamplingParams,
        prompt_ids: Sequence[int],
        vocab_size: int,
        device: torch.device | str = "cpu",
    ) -> None:
        import torch

        self.params = params
        self.history = TokenHistory(vocab_size, prompt_ids, device)
        self.processors = make_processors(params)
        self.generator = torch.Generator(device=device)
        seed = params.seed if params.seed is not None else secrets.randbits(63)
        self.generator.manual_seed(seed)
        self.sampler = make_sampler(params, self.generator)
        self.vocab_size = vocab_size

    def __call__(self, logits: torch.Tensor) -> Sample:
        """Pick from one row of logits (padded vocab columns beyond the tokenizer's are ignored)."""
        logits = logits[: self.vocab_size].float()
        for process in self.processors:
            logits = process(logits, self.history)
        if self.params.greedy and not (self.params.logprobs or self.params.top_logprobs):
            return Sample(int(logits.argmax().item()), None, ())  # same argmax, no softmax to pay for
        logprobs = logits.log_softmax(-1)
        token_id = self.sampler(logprobs)
        return Sample(token_id, *self._report(logprobs, token_id))

    def _report(
        self, logprobs: torch.Tensor, token_id: int
    ) -> tuple[float | None, tuple[tuple[int, float], ...]]:
        if not self.params.logprobs and not self.params.top_logprobs:
            return None, ()
        chosen = float(logprobs[token_id].item())
        top: tuple[tuple[int, float], ...] = ()
        if self.params.top_logprobs:
            values, ids = logprobs.topk(self.params.top_logprobs)
            top = tuple((int(i), float(v)) for i, v in zip(ids.tolist(), values.tolist(), strict=True))
        return chosen, top

    def accept(self, token_id: int) -> None:
        self.history.accept(token_id)

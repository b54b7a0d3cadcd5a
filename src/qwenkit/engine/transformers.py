"""The transformers backend: the reference implementation, GPUs, bitsandbytes and LoRA adapters.

A ``ModelRunner``: each step decodes every running sequence with one forward, then prefills new
sequences alone and joins their KV to a shared, left-padded ``DynamicCache``: each row carries an
attention mask over its own columns and its own position ids, so a sequence computes the same
attention whether it runs alone or next to others. Finished rows are dropped from the batch and
columns no row uses any more are trimmed from the left.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from qwenkit.chat.tokenizer import Tokenizer
from qwenkit.engine.core import EngineCore
from qwenkit.engine.sequence import Sequence
from qwenkit.engine.torch_sampling import SequenceSampler
from qwenkit.engine.transformers_loading import (
    ModelSource,
    apply_adapters,
    cache_kwarg,
    import_torch,
    load_model,
    load_named_adapters,
    load_tokenizer,
    quantization_config,
    resolve_device,
    resolve_dtype,
)
from qwenkit.engine.transformers_vision import VisionPrefill
from qwenkit.engine.types import BackendKind, BackendOptions, Capability, SamplingParams, TokenEvent
from qwenkit.errors import UsageError

if TYPE_CHECKING:
    import torch

    from qwenkit.media import VisionGrid


@dataclass
class _Row:
    """A running sequence's transformers side (``Sequence.state``)."""

    sampler: SequenceSampler
    kv_len: int = 0  # tokens of this sequence in the KV cache
    in_batch: bool = False
    logits: torch.Tensor | None = None  # the row whose next token is due
    rope_delta: int = 0  # vision models: M-RoPE positions after images lag the KV length by this


def _row(seq: Sequence) -> _Row:
    state = seq.state
    assert isinstance(state, _Row), "a sequence started by another runner"
    return state


def _left_pad(t: torch.Tensor, length: int, dim: int) -> torch.Tensor:
    import torch

    missing = length - t.shape[dim]
    if missing <= 0:
        return t
    shape = list(t.shape)
    shape[dim] = missing
    return torch.cat([torch.zeros(shape, dtype=t.dtype, device=t.device), t], dim=dim)


class _Batch:
    """The running sequences; row i of the cache and of ``mask`` belongs to ``rows[i]``."""

    def __init__(self) -> None:
        self.rows: list[Sequence] = []
        self.cache: Any = None
        self.mask: torch.Tensor | None = None

    def add(self, seq: Sequence, cache: Any) -> None:
        import torch

        kv_len = _row(seq).kv_len
        mask = torch.ones((1, kv_len), dtype=torch.long, device=cache.layers[0].keys.device)
        if not self.rows:
            self.rows, self.cache, self.mask = [seq], cache, mask
            return
        assert self.mask is not None
        width = max(self.mask.shape[1], kv_len)
        for mine, new in zip(self.cache.layers, cache.layers, strict=True):
            mine.keys = torch.cat([_left_pad(mine.keys, width, 2), _left_pad(new.keys, width, 2)])
            mine.values = torch.cat([_left_pad(mine.values, width, 2), _left_pad(new.values, width, 2)])
        self.mask = torch.cat([_left_pad(self.mask, width, 1), _left_pad(mask, width, 1)])
        self.rows.append(seq)

    def keep(self, indices: list[int]) -> None:
        """Keep only these rows, then drop leading columns that every remaining row masks out."""
        import torch

        if len(indices) == len(self.rows):
            return
        self.rows = [self.rows[i] for i in indices]
        if not self.rows:
            self.cache = self.mask = None
            return
        assert self.mask is not None
        index = torch.tensor(indices, device=self.mask.device)
        self.mask = self.mask[index]
        start = int(self.mask.shape[1] - max(_row(r).kv_len for r in self.rows))
        self.mask = self.mask[:, start:]
        for layer in self.cache.layers:
            layer.keys = layer.keys[index, :, start:]
            layer.values = layer.values[index, :, start:]


class TransformersRunner:
    """A transformers model behind the ``ModelRunner`` protocol (see the module docstring)."""

    kind = BackendKind.TRANSFORMERS
    capabilities = Capability.LOGPROBS | Capability.ADAPTERS

    def __init__(self, model: Any, tokenizer: Tokenizer, device: str, options: BackendOptions) -> None:
        self.tokenizer = tokenizer
        self.device = device
        self.model = model
        config = getattr(model.config, "text_config", None) or model.config  # VL: the language model's
        trained = getattr(config, "max_position_embeddings", None) or options.context
        self.context_length = min(options.context, trained)
        self.n_slots = options.parallel
        specials = tokenizer.special_tokens.values()
        self.vocab_size = min(max(tokenizer.vocab_size, max(specials, default=0) + 1), config.vocab_size)
        self._cache_kw = cache_kwarg(model)
        self._batch = _Batch()
        self._lora = tuple(name for name, _ in options.lora)
        self._vision = VisionPrefill.for_model(model)
        if self._vision is not None:
            self.capabilities = TransformersRunner.capabilities | Capability.IMAGES

    @property
    def vision_grid(self) -> VisionGrid | None:
        return None if self._vision is None else self._vision.grid

    @classmethod
    def load(cls, path_or_dir: str | Path, options: BackendOptions) -> TransformersRunner:
        torch = import_torch()
        device = resolve_device(options.device, torch)
        dtype = resolve_dtype(options.dtype, device, torch)
        quant = quantization_config(options.quantization, device, torch)
        source = ModelSource.locate(path_or_dir)
        if quant is not None and source.gguf_file is not None:
            raise UsageError("a GGUF is already quantized: drop quantization, or load a safetensors model")
        if options.threads is not None:
            torch.set_num_threads(options.threads)
        tokenizer = load_tokenizer(source)
        model = load_model(source, device, dtype, quant)
        model = apply_adapters(model, options.adapters, quantized=quant is not None)
        model = load_named_adapters(model, options.lora)
        model.eval()
        return cls(model, tokenizer, device, options)

    # ----- before a sequence runs ----------------------------------------------------------------

    def warm_up(self) -> None:
        """Nothing to do: torch pays its first-call costs per shape, which no fixed step covers."""

    def validate(self, params: SamplingParams) -> None:
        """Everything else this runner cannot do is a missing capability, checked by the core."""
        if params.adapter is not None and params.adapter not in self._lora:
            known = ", ".join(self._lora) or "none"
            raise UsageError(
                f"no adapter named {params.adapter!r} is loaded (loaded: {known})", param="model"
            )

    def _adapter_kw(self, seqs: list[Sequence]) -> dict[str, Any]:
        """peft's mixed-adapter batches: each row names its adapter (``__base__``: none)."""
        if not self._lora:
            return {}
        return {"adapter_names": [s.params.adapter or "__base__" for s in seqs]}

    def place(self, seq: Sequence, free: list[int]) -> int:
        return free[0]

    def start(self, seq: Sequence) -> None:
        seq.state = _Row(SequenceSampler(seq.params, seq.prompt, self.vocab_size, self.model.device))

    # ----- one step --------------------------------------------------------------------------------

    def run(self, seqs: list[Sequence]) -> list[Sequence]:
        """Decode the batch one token per row, then prefill the sequences that joined this step."""
        due = self._decode() if self._batch.rows else []
        for seq in seqs:
            if not _row(seq).in_batch:
                try:
                    self._prefill(seq)
                except Exception as exc:  # this prompt failed (out of memory, say); the batch goes on
                    seq.error = exc
                due.append(seq)
        return due

    def _prefill(self, seq: Sequence) -> None:
        import torch
        from transformers import DynamicCache

        row, cache = _row(seq), DynamicCache()
        ids = torch.tensor([seq.prompt], dtype=torch.long, device=self.model.device)
        images: dict[str, Any] = {}
        if seq.images:
            if self._vision is None:
                raise UsageError("this model reads no images")
            vision = self._vision.inputs(ids, seq.images)
            row.rope_delta = vision.rope_delta
            images = {"pixel_values": vision.pixel_values, "image_grid_thw": vision.image_grid_thw,
                      "position_ids": vision.position_ids}
        with torch.inference_mode():
            out = self.model(
                input_ids=ids,
                use_cache=True,
                logits_to_keep=1,
                **images,
                **{self._cache_kw: cache},
                **self._adapter_kw([seq]),
            )
        row.kv_len, row.logits, row.in_batch = len(seq.prompt), out.logits[0, -1], True
        self._batch.add(seq, cache)

    def _decode(self) -> list[Sequence]:
        import torch

        batch, device = self._batch, self.model.device
        assert batch.mask is not None
        ids = torch.tensor([[r.pending.pop(0)] for r in batch.rows], dtype=torch.long, device=device)
        positions = torch.tensor(
            [[_row(r).kv_len + _row(r).rope_delta] for r in batch.rows], dtype=torch.long, device=device
        )
        mask = torch.cat([batch.mask, torch.ones_like(batch.mask[:, :1])], dim=1)
        with torch.inference_mode():
            out = self.model(
                input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=True,
                **{self._cache_kw: batch.cache}, **self._adapter_kw(batch.rows),
            )  # fmt: skip
        batch.mask = mask
        due = []
        for i, seq in enumerate(batch.rows):
            row = _row(seq)
            row.kv_len += 1
            if not seq.pending:  # forced tokens are fed one per step; their logits are not used
                row.logits = out.logits[i, -1]
                due.append(seq)
        return due

    def sample(self, seq: Sequence) -> TokenEvent:
        row = _row(seq)
        assert row.logits is not None
        sample = row.sampler(row.logits)
        row.sampler.accept(sample.token_id)
        return TokenEvent(sample.token_id, sample.logprob, sample.top_logprobs)

    def accept_forced(self, seq: Sequence, token: int) -> bool:
        _row(seq).sampler.accept(token)
        return True

    # ----- after a sequence ------------------------------------------------------------------------

    def release(self, seq: Sequence, *, keep_cache: bool) -> None:
        """Drop the row (no prefix cache here: ``keep_cache`` changes nothing)."""
        if isinstance(seq.state, _Row) and seq.state.in_batch:
            self._batch.keep([i for i, r in enumerate(self._batch.rows) if r is not seq])
            seq.state.in_batch = False

    def close(self) -> None:
        self._batch = _Batch()


class TransformersBackend(EngineCore):
    """The engine core over a ``TransformersRunner``: ``qwenkit.load(..., backend="transformers")``."""

    runner: TransformersRunner
    runner_type = TransformersRunner

"""The training loss, with the output layer applied only where a label is.

A causal LM's forward applies the output layer (vocabulary x hidden: 151,936 x 896 on the 0.5B, about
a quarter of its compute) at every position, and the loss then ignores the prompt's positions. Chat
tuning labels only the answers, so most of that work is thrown away. Here the decoder runs as usual and
the output layer sees only the hidden states whose next token is labelled; the loss is the one
transformers computes (float32 cross-entropy, summed over the batch's labelled tokens and divided by
``num_items_in_batch`` when the Trainer passes it, else their mean), so gradient accumulation and the
logged numbers are unchanged.
"""

from __future__ import annotations

from typing import Any

from qwenkit.finetune.labels import IGNORE


def _parts(model: Any) -> tuple[Any, Any] | None:
    """The decoder and output layer of a text causal LM (under peft's wrapper), or None for others."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    try:
        decoder, head = base.get_decoder(), base.get_output_embeddings()
    except (AttributeError, NotImplementedError):
        return None
    return (decoder, head) if decoder is not None and head is not None else None


def labelled_loss(model: Any, inputs: dict[str, Any], num_items_in_batch: Any = None) -> Any | None:
    """The loss of ``inputs`` (input_ids, attention_mask, labels), or None where this model's parts
    are not a plain decoder and output layer (the caller then uses the model's own loss)."""
    import torch.nn.functional as F

    parts = _parts(model)
    if parts is None or set(inputs) - {"input_ids", "attention_mask", "labels"}:
        return None
    decoder, head = parts
    hidden = decoder(
        input_ids=inputs["input_ids"], attention_mask=inputs.get("attention_mask")
    ).last_hidden_state
    targets = inputs["labels"][:, 1:].to(hidden.device)
    keep = targets != IGNORE
    logits = head(hidden[:, :-1][keep]).float()
    if num_items_in_batch is None:
        return F.cross_entropy(logits, targets[keep], reduction="mean")
    if hasattr(num_items_in_batch, "to"):
        num_items_in_batch = num_items_in_batch.to(hidden.device)
    return F.cross_entropy(logits, targets[keep], reduction="sum") / num_items_in_batch


def labelled_loss_trainer() -> type:
    """transformers' Trainer with :func:`labelled_loss` as its loss (imported late: transformers is heavy)."""
    from transformers import Trainer

    class LabelledLossTrainer(Trainer):  # type: ignore[misc]
        def compute_loss(
            self,
            model: Any,
            inputs: dict[str, Any],
            return_outputs: bool = False,
            num_items_in_batch: Any = None,
        ) -> Any:
            # One process only: across devices the Trainer rescales the loss in ways this does not copy.
            alone = self.accelerator.num_processes == 1 and self.args.n_gpu <= 1
            loss = labelled_loss(model, inputs, num_items_in_batch) if alone and not return_outputs else None
            if loss is None:
                return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
            return loss

    return LabelledLossTrainer
